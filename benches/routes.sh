#!/usr/bin/env bash
# What reading the model field costs: two blueshifts in front of the same fixed backend, one
# whose route matches /v1/chat/completions by path, one that also matches the JSON body's
# "model" (so it reads the body before choosing a route, and gives it back), under the same wrk
# POST load with a 1 KiB and a 256 KiB chat body (the model named after the messages, as OpenAI's
# client sends it: the whole body is scanned), in alternating rounds.
#
#   benches/routes.sh [seconds-per-run] [rounds]      (default 8 s, 5 rounds)
source "$(dirname "$0")/common.sh"
SECS=${1:-8}; ROUNDS=${2:-5}
need_tools nginx wrk
(cd "$ROOT" && cargo build --release --bin blueshift)
TCK=$(getconf CLK_TCK)
start_backend
policy() { # port admin match
  cat <<EOF
listen: 127.0.0.1:$1
admin: 127.0.0.1:$2
routes:
  - name: llama
    match: $3
    colors: {blue: {backends: [{addr: 127.0.0.1:$BLUE_PORT}]}}
  - name: rest
    colors: {blue: {backends: [{addr: 127.0.0.1:$GREEN_PORT}]}}
EOF
}
declare -A PORT=([path]=$((BS_PORT + 10)) [model]=$((BS_PORT + 12))) PID=()
policy "${PORT[path]}" $((BS_ADMIN + 10)) "{path_prefix: /v1/chat/completions}" >"$WORK/path.yaml"
policy "${PORT[model]}" $((BS_ADMIN + 12)) "{path_prefix: /v1/chat/completions, model: llama-3-8b}" >"$WORK/model.yaml"
for v in path model; do
  RUST_LOG=error "$ROOT/target/release/blueshift" serve -p "$WORK/$v.yaml" --pingora-conf "$BS_PINGORA_CONF" &
  PIDS+=($!); PID[$v]=$!
  wait_port "${PORT[$v]}"
done
sleep 2   # first health checks
for kib in 1 256; do
  python3 -c "import json; n=$kib*1024; m=[{'role':'user','content':'a'*(n-120)}]; print(json.dumps({'messages':m,'model':'llama-3-8b','stream':False}), end='')" >"$WORK/body$kib.json"
done
cat >"$WORK/post.lua" <<'EOF'
local f = assert(io.open(os.getenv("BODY_FILE"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
EOF
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
for kib in 1 256; do
  for round in $(seq "$ROUNDS"); do
    for v in path model; do
      c0=$(cpu "${PID[$v]}")
      out=$(BODY_FILE=$WORK/body$kib.json wrk -t1 -c8 -d"${SECS}s" --latency -s "$WORK/post.lua" \
        "http://127.0.0.1:${PORT[$v]}/v1/chat/completions")
      c1=$(cpu "${PID[$v]}")
      echo "$out" | grep -q "Non-2xx" && { echo "$v: non-2xx answers" >&2; exit 1; }
      python3 - "$kib" "$v" "$round" "$c0" "$c1" "$TCK" <<PY
import re, sys
t = """$out"""
kib, v, rnd, c0, c1, tck = sys.argv[1:]
def ms(s):
    m = re.match(r"([\d.]+)(\w+)", s); x = float(m.group(1))
    return x * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]
n = int(re.search(r"(\d+) requests in", t).group(1))
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
p50 = ms(re.search(r"^\s+50%\s+(\S+)", t, re.M).group(1))
p99 = ms(re.search(r"^\s+99%\s+(\S+)", t, re.M).group(1))
cpu = (float(c1) - float(c0)) / float(tck) * 1e6 / n
print(kib, v, rnd, rps, p50, p99, cpu)
PY
    done
  done
done | tee "$WORK/routes" >&2
python3 - "$WORK/routes" <<'PY'
import statistics as st, sys
rows = [l.split() for l in open(sys.argv[1])]
print("| body | routed by | req/s | p50 | p99 | CPU µs/req |")
print("| --- | --- | --- | --- | --- | --- |")
for kib in ("1", "256"):
    med = {}
    for v in ("path", "model"):
        rs = [r for r in rows if r[0] == kib and r[1] == v]
        med[v] = [st.median(float(r[i]) for r in rs) for i in (3, 4, 5, 6)]
        rps, p50, p99, cpu = med[v]
        print(f"| {kib} KiB | {v} | {rps:,.0f} | {p50:.3f} ms | {p99:.3f} ms | {cpu:.1f} |")
    d = [m - p for m, p in zip(med["model"], med["path"])]
    print(f"| {kib} KiB | model - path | {med['model'][0] / med['path'][0]:.3f}x | "
          f"{d[1] * 1000:+.0f} µs | {d[2] * 1000:+.0f} µs | {d[3]:+.1f} |")
PY
