#!/usr/bin/env bash
# Where blueshift's per-request cost comes from: nginx, blueshift, bare Pingora (a ProxyHttp with
# nothing in it), bare Pingora with blueshift's client-connection settings (`bare-limits`:
# pipelining, read/write timeouts, keep-alive) and Pingora's HTTP/1 sessions without pingora-proxy (examples/lean_core.rs), all
# in front of the same backend, wrk -t1 -c32, alternating rounds, user and system CPU per request
# from /proc.
#
#   benches/floor.sh [seconds-per-run] [rounds]     (default 5 s, 3 rounds)
source "$(dirname "$0")/common.sh"
SECS=${1:-5}
ROUNDS=${2:-3}
BARE_PORT=${BARE_PORT:-18090}
LEAN_PORT=${LEAN_PORT:-18091}
LIMITS_PORT=${LIMITS_PORT:-18092}
need_tools nginx wrk curl python3
[ -x "$ROOT/target/release/blueshift" ] || (cd "$ROOT" && cargo build --release)
(cd "$ROOT" && cargo build --release --example bare_pingora --example lean_core)
TCK=$(getconf CLK_TCK)

start_backend
start_blueshift
start_nginx_proxy
"$ROOT/target/release/examples/bare_pingora" "127.0.0.1:$BARE_PORT" "127.0.0.1:$BLUE_PORT" &
PIDS+=($!)
"$ROOT/target/release/examples/lean_core" "127.0.0.1:$LEAN_PORT" "127.0.0.1:$BLUE_PORT" &
PIDS+=($!)
BARE_CLIENT_LIMITS=1 "$ROOT/target/release/examples/bare_pingora" "127.0.0.1:$LIMITS_PORT" "127.0.0.1:$BLUE_PORT" &
PIDS+=($!)
wait_port "$BARE_PORT"; wait_port "$LEAN_PORT"; wait_port "$LIMITS_PORT"
declare -A PID PORT
PID=([nginx]=$(pgrep -P "$(cat "$WORK/proxy/nginx.pid")" | head -1) [blueshift]=${PIDS[0]}
  [bare-pingora]=${PIDS[1]} [lean-core]=${PIDS[2]} [bare-limits]=${PIDS[3]})
PORT=([nginx]=$NGINX_PORT [blueshift]=$BS_PORT [bare-pingora]=$BARE_PORT [lean-core]=$LEAN_PORT
  [bare-limits]=$LIMITS_PORT)
TARGETS=(nginx blueshift bare-pingora bare-limits lean-core)

RESULTS="$WORK/results"
: >"$RESULTS"
for round in $(seq "$ROUNDS"); do
  for t in "${TARGETS[@]}"; do
    read -r u0 s0 < <(awk '{print $14, $15}' "/proc/${PID[$t]}/stat")
    out=$(wrk -t1 -c32 -d"${SECS}s" --latency "http://127.0.0.1:${PORT[$t]}/predict")
    read -r u1 s1 < <(awk '{print $14, $15}' "/proc/${PID[$t]}/stat")
    reqs=$(echo "$out" | awk '/requests in/ {print $1}')
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    p99=$(echo "$out" | awk '$1=="99%" {print $2}')
    echo "$t $rps $p99 $((u1 - u0)) $((s1 - s0)) $reqs" >>"$RESULTS"
    echo "round $round $t: $rps req/s p99 $p99" >&2
  done
done

echo
echo "## wrk -t1 -c32, ${SECS}s per run, median of $ROUNDS alternating rounds ($(nproc) cores, $(date -u +%F))"
echo
python3 - "$RESULTS" "$TCK" "${TARGETS[@]}" <<'PY'
import sys, statistics as st
rows = [l.split() for l in open(sys.argv[1])]
tck = int(sys.argv[2])
def ms(v):
    for unit, f in (("us", 1e-3), ("ms", 1.0), ("s", 1e3)):
        if v.endswith(unit):
            return float(v[: -len(unit)]) * f
    return float("nan")
med = {}
for t in sys.argv[3:]:
    rs = [r for r in rows if r[0] == t]
    us = lambda i: st.median(int(r[i]) / tck / int(r[5]) * 1e6 for r in rs)
    med[t] = (st.median(float(r[1]) for r in rs), st.median(ms(r[2]) for r in rs), us(3), us(4))
print("| target | req/s | p99 ms | user µs/req | sys µs/req | req/s vs nginx | CPU vs nginx |")
print("| --- | --- | --- | --- | --- | --- | --- |")
n = med["nginx"]
for t, (rps, p99, u, s) in med.items():
    print(f"| {t} | {rps:,.0f} | {p99:.2f} | {u:.1f} | {s:.1f} | {rps / n[0]:.2f}x | {(u + s) / (n[2] + n[3]):.2f}x |")
PY
