#!/usr/bin/env bash
# Instructions each proxy executes per tiny request, counted by valgrind (callgrind): a number
# the other tenants of a shared machine cannot move, where req/s and CPU time move by ±20%
# between runs. nginx (weighted upstream, keep-alive, X-Forwarded-For/-Proto), blueshift (the
# benches' policy: 90/10, cookie affinity, override header, metrics), bare Pingora with
# blueshift's client settings and Pingora's HTTP/1 sessions without pingora-proxy, each alone
# under callgrind in front of the same backend. Counters are zeroed after a warm-up, then
# h2load --h1 -c32 sends N requests. Each thread counts on its own: the busiest is the proxy
# thread, which does the per-request work; the process column adds the rest (blueshift's
# supervisor, health checks and admin API tick by the clock, not per request, and valgrind's
# ~50x slowdown makes each request pay ~50x its real share of them).
#
#   benches/instructions.sh [N]     (default 4000; ~2 minutes)
#
# KEEP=DIR keeps the callgrind files, for `callgrind_annotate --inclusive=yes DIR/FILE`.
source "$(dirname "$0")/common.sh"
N=${1:-4000}
need_tools nginx curl
command -v valgrind >/dev/null || need_tools valgrind
command -v h2load >/dev/null || need_tools nghttp2-client
[ -x "$ROOT/target/release/blueshift" ] || (cd "$ROOT" && cargo build --release)
(cd "$ROOT" && cargo build --release --example bare_pingora --example lean_core)
OUT=${KEEP:-$WORK/callgrind}
mkdir -p "$OUT" "$WORK/proxy/logs"
start_backend

# Runs "$@" under callgrind, waits for PORT, warms up, counts N requests; prints name and
# instructions per request.
count() {
  local name=$1 port=$2
  shift 2
  valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$OUT/$name.%p" "$@" 2>"$WORK/$name.valgrind" &
  local pid=$!
  PIDS+=("$pid")
  for _ in $(seq 600); do
    curl -sf -o /dev/null "127.0.0.1:$port/predict" && break
    sleep 0.1
  done
  h2load --h1 -n 500 -c 32 "http://127.0.0.1:$port/predict" >/dev/null
  callgrind_control -z "$pid" >/dev/null
  local done
  done=$(h2load --h1 -n "$N" -c 32 "http://127.0.0.1:$port/predict" | awk '/^requests:/ {print $8}')
  callgrind_control -d "$pid" >/dev/null
  local files=()
  for _ in $(seq 100); do
    files=("$OUT/$name.$pid".*)
    [ -e "${files[0]}" ] && ! grep -L '^totals:' "${files[@]}" | grep -q . && break
    sleep 0.1
  done
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  [ "$done" = "$N" ] || { echo "$name: $done of $N requests succeeded" >&2; exit 1; }
  # name, the busiest thread's instructions, the whole process's
  echo "$name $(awk '/^totals:/ {t += $2; if ($2 > m) m = $2} END {print m, t}' "${files[@]}")"
}

nginx_proxy_conf 90 10 >"$WORK/proxy/nginx.conf"
BS_PORT=18380 BS_ADMIN=18381 bs_policy >"$WORK/policy.yaml"
{
  count nginx "$NGINX_PORT" nginx -p "$WORK/proxy" -c "$WORK/proxy/nginx.conf" \
    -g 'daemon off; master_process off;'
  RUST_LOG=error count blueshift 18380 "$ROOT/target/release/blueshift" serve -p "$WORK/policy.yaml"
  BARE_CLIENT_LIMITS=1 count bare-pingora 18382 "$ROOT/target/release/examples/bare_pingora" \
    127.0.0.1:18382 "127.0.0.1:$BLUE_PORT"
  count lean-core 18383 "$ROOT/target/release/examples/lean_core" 127.0.0.1:18383 "127.0.0.1:$BLUE_PORT"
} >"$WORK/totals"

echo
echo "## Instructions per request (callgrind), h2load --h1 -c32, $N requests ($(date -u +%F))"
echo
python3 - "$WORK/totals" "$N" <<'PY'
import sys
rows = {name: (int(thread), int(process)) for name, thread, process in map(str.split, open(sys.argv[1]))}
n = int(sys.argv[2])
per = {k: (t / n, p / n) for k, (t, p) in rows.items()}
print("| target | proxy thread: instructions / request | vs nginx | vs bare Pingora | whole process |")
print("| --- | --- | --- | --- | --- |")
for k, (t, p) in per.items():
    print(f"| {k} | {t:,.0f} | {t / per['nginx'][0]:.2f}x | {t / per['bare-pingora'][0]:.2f}x | {p:,.0f} |")
PY
