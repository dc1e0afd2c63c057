#!/usr/bin/env bash
# Instructions each proxy executes per tiny request, counted by valgrind (callgrind): a number
# the other tenants of a shared machine cannot move, where req/s and CPU time move by ±20%
# between runs. nginx (weighted upstream, keep-alive, X-Forwarded-For/-Proto), blueshift (the
# benches' policy: 90/10, cookie affinity, override header, metrics), bare Pingora with
# blueshift's client settings and Pingora's HTTP/1 sessions without pingora-proxy, each alone
# under callgrind in front of the same backend. Counters are zeroed after a warm-up, then
# h2load --h1 -c32 sends N requests; all of the process's threads count (blueshift's
# supervisor and health checks too; under valgrind they tick ~20x more often per request than
# at full speed, which adds ~1-2k).
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
  valgrind --tool=callgrind --callgrind-out-file="$OUT/$name.%p" "$@" 2>"$WORK/$name.valgrind" &
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
  local file
  for _ in $(seq 100); do
    file=$(ls "$OUT/$name.$pid".* 2>/dev/null | head -1)
    [ -n "$file" ] && grep -q '^totals:' "$file" && break
    sleep 0.1
  done
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  [ "$done" = "$N" ] || { echo "$name: $done of $N requests succeeded" >&2; exit 1; }
  echo "$name $(awk '/^totals:/ {print $2}' "$file")"
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
rows = dict(l.split() for l in open(sys.argv[1]))
n = int(sys.argv[2])
per = {k: int(v) / n for k, v in rows.items()}
print("| target | instructions / request | vs nginx | vs bare Pingora |")
print("| --- | --- | --- | --- |")
for k, v in per.items():
    print(f"| {k} | {v:,.0f} | {v / per['nginx']:.2f}x | {v / per['bare-pingora']:.2f}x |")
PY
