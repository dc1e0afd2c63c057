#!/usr/bin/env bash
# Instructions each proxy executes per unit of work, counted by valgrind (callgrind): a number
# the other tenants of a shared machine cannot move, where req/s and CPU time move by ±20%
# between runs. Each proxy runs alone under callgrind; counters are zeroed after a warm-up, then
# the load is counted. Each thread counts on its own: the busiest is the proxy thread, which
# does the per-request work; the process column adds the rest (blueshift's supervisor, health
# checks and admin API tick by the clock, not per request, and valgrind's ~50x slowdown makes
# each request pay ~50x its real share of them).
#
#   benches/instructions.sh [N] [tiny|sse|h2|close|wait]   (default 4000 tiny; ~1-2 minutes each)
#
# Workloads:
#   tiny  N tiny requests (h2load --h1 -c32) through nginx (weighted upstream, keep-alive,
#         X-Forwarded-For/-Proto), blueshift (the benches' policy: 90/10, cookie affinity,
#         override header, metrics), bare Pingora with blueshift's client settings and Pingora's
#         HTTP/1 sessions without pingora-proxy, in front of benches/common.sh's nginx backend
#   sse   token streams, per event: 20 clients read 40-event streams for 4 s (examples/sse_load)
#   h2    N requests over HTTP/2 and TLS, 8 connections x 10 streams (h2load), handshakes included
#   close a new connection per request: 16 clients for 4 s (examples/conn_load), accept to close
#   wait  N requests to a 50 ms model from 500 keep-alive clients (h2load --h1; WAIT_CLIENTS
#         changes the count): the per-request cost when many connections wait at once
# sse, h2, close and wait run nginx tuned for model traffic, blueshift and bare Pingora in front
# of the model server, as benches/models.sh does.
#
# TINY_HEADER='cookie: blueshift=blue' sends a header with each tiny request (there: a client
# that keeps blueshift's affinity cookie, as a browser does, and so gets no Set-Cookie).
# KEEP=DIR keeps the callgrind files, for `callgrind_annotate --inclusive=yes DIR/FILE`.
# CACHE_SIM=1 also simulates the CPU's caches (callgrind --cache-sim=yes: 32 KiB L1 for code and
# for data) and adds the proxy thread's L1 misses per unit, code (I1) and data read (D1), to the
# table: where a proxy's time per instruction goes up, this is where it shows.
source "$(dirname "$0")/common.sh"
N=${1:-4000}
LOAD=${2:-tiny}
need_tools nginx curl
command -v valgrind >/dev/null || need_tools valgrind
command -v h2load >/dev/null || need_tools nghttp2-client
(cd "$ROOT" && cargo build --release --bin blueshift --example bare_pingora --example lean_core \
  --example model --example sse_load --example conn_load)
OUT=${KEEP:-$WORK/callgrind}
mkdir -p "$OUT" "$WORK/proxy/logs"

# The load, on PORT: "warm" or "count"; "count" prints how many units it completed.
load_tiny() {
  local n=500
  [ "$2" = count ] && n=$N
  h2load --h1 -n "$n" -c 32 ${TINY_HEADER:+-H "$TINY_HEADER"} "http://127.0.0.1:$1/predict" | awk '/^requests:/ {print $8}'
}
load_sse() {
  local clients=10 secs=2
  [ "$2" = count ] && clients=20 secs=4
  "$ROOT/target/release/examples/sse_load" "127.0.0.1:$1" "/stream?events=40&gap=25&stamp=1" \
    "$clients" "$secs" | python3 -c 'import json, sys; d = json.load(sys.stdin); print(d["events"] if d["errors"] == 0 else 0)'
}
load_h2() {
  local n=400
  [ "$2" = count ] && n=$N
  h2load -n "$n" -c 8 -m 10 "https://localhost:$1/predict" | awk '/^requests:/ {print $8}'
}
load_wait() {
  local n=1000
  [ "$2" = count ] && n=$N
  h2load --h1 -n "$n" -c "${WAIT_CLIENTS:-500}" "http://127.0.0.1:$1/predict?delay=50" | awk '/^requests:/ {print $8}'
}
load_close() {
  local secs=2
  [ "$2" = count ] && secs=4
  "$ROOT/target/release/examples/conn_load" "127.0.0.1:$1" /predict 16 "$secs" |
    python3 -c 'import json, sys; d = json.load(sys.stdin); print(d["requests"] if d["errors"] == 0 else 0)'
}
UNIT=request
[ "$LOAD" = sse ] && UNIT=event
[ "$LOAD" = close ] && UNIT=connection
TIMED=
case $LOAD in sse | close) TIMED=1 ;; esac
SCHEME=http
[ "$LOAD" = h2 ] && SCHEME=https

# Runs "$@" under callgrind, waits for PORT, warms up, counts; prints name, units, the busiest
# thread's instructions and the whole process's.
count() {
  local name=$1 port=$2
  shift 2
  valgrind --tool=callgrind ${CACHE_SIM:+--cache-sim=yes} --separate-threads=yes --callgrind-out-file="$OUT/$name.%p" "$@" 2>"$WORK/$name.valgrind" &
  local pid=$!
  PIDS+=("$pid")
  for _ in $(seq 600); do
    curl -ksf -o /dev/null "$SCHEME://localhost:$port/predict" && break
    sleep 0.1
  done
  "load_$LOAD" "$port" warm >/dev/null
  callgrind_control -z "$pid" >/dev/null
  local done
  done=$("load_$LOAD" "$port" count)
  callgrind_control -d "$pid" >/dev/null
  local files=()
  for _ in $(seq 100); do
    files=("$OUT/$name.$pid".*)
    [ -e "${files[0]}" ] && ! grep -L '^totals:' "${files[@]}" | grep -q . && break
    sleep 0.1
  done
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  [ "${done:-0}" -gt 0 ] || { echo "$name: the $LOAD load failed" >&2; exit 1; }
  [ -n "$TIMED" ] || [ "$done" = "$N" ] || { echo "$name: $done of $N requests succeeded" >&2; exit 1; }
  # The busiest thread's instructions (and, with CACHE_SIM, its I1 and D1 read misses), the
  # process's instructions.
  echo "$name $done $(awk '/^totals:/ {t += $2; if ($2 > m) {m = $2; i = $5; d = $6}} END {print m, t, i + 0, d + 0}' "${files[@]}")"
}

if [ "$LOAD" = tiny ]; then
  start_backend
  nginx_proxy_conf 90 10 >"$WORK/proxy/nginx.conf"
  BS_PORT=18380 BS_ADMIN=18381 bs_policy >"$WORK/policy.yaml"
  {
    count nginx "$NGINX_PORT" nginx -p "$WORK/proxy" -c "$WORK/proxy/nginx.conf" \
      -g 'daemon off; master_process off;'
    RUST_LOG=error count blueshift 18380 "$BS_BIN" serve -p "$WORK/policy.yaml" --pingora-conf "$BS_PINGORA_CONF"
    BARE_CLIENT_LIMITS=1 count bare-pingora 18382 "$ROOT/target/release/examples/bare_pingora" \
      127.0.0.1:18382 "127.0.0.1:$BLUE_PORT"
    count lean-core 18383 "$ROOT/target/release/examples/lean_core" 127.0.0.1:18383 "127.0.0.1:$BLUE_PORT"
  } >"$WORK/totals"
  WHAT="h2load --h1 -c32, $N requests"
else
  start_models
  models_nginx_conf proxy 18385 18386 "$TUNED_UPSTREAM" "$TUNED_LOCATION"
  BS_ADMIN=18381 models_policy 18380 18383 >"$WORK/policy.yaml"
  P=(18385 18380 18382)
  [ "$LOAD" = h2 ] && P=(18386 18383 18384)
  {
    count nginx "${P[0]}" nginx -p "$WORK/proxy" -c "$WORK/proxy/nginx.conf" \
      -g 'daemon off; master_process off;'
    RUST_LOG=error count blueshift "${P[1]}" "$BS_BIN" serve -p "$WORK/policy.yaml" --pingora-conf "$BS_PINGORA_CONF"
    BARE_CLIENT_LIMITS=1 count bare-pingora "${P[2]}" "$ROOT/target/release/examples/bare_pingora" \
      127.0.0.1:18382 "127.0.0.1:$MODEL_PORT" 127.0.0.1:18384 "$CERT" "$KEY"
  } >"$WORK/totals"
  case $LOAD in
    sse) WHAT="20 token streams for 4 s" ;;
    close) WHAT="16 clients, a new connection per request, for 4 s" ;;
    wait) WHAT="h2load --h1 -c${WAIT_CLIENTS:-500} to a 50 ms model, $N requests" ;;
    *) WHAT="h2load -c8 -m10 over TLS, $N requests" ;;
  esac
  WHAT="nginx tuned for model traffic; $WHAT"
fi

echo
echo "## Instructions per $UNIT (callgrind), $WHAT ($(date -u +%F))"
echo
python3 - "$WORK/totals" "$UNIT" <<'PY'
import sys
rows = {name: [int(v) for v in rest] for name, *rest in map(str.split, open(sys.argv[1]))}
per = {k: [v / n for v in vs] for k, (n, *vs) in rows.items()}
cache = any(v[2] for v in per.values())
unit = sys.argv[2]
head = f"| target | proxy thread: instructions / {unit} | vs nginx | vs bare Pingora | whole process |"
print(head + (f" L1 code misses / {unit} | L1 data read misses / {unit} |" if cache else ""))
print("| --- " * (9 if cache else 5) + "|")
for k, (t, p, i1, d1) in per.items():
    line = f"| {k} | {t:,.0f} | {t / per['nginx'][0]:.2f}x | {t / per['bare-pingora'][0]:.2f}x | {p:,.0f} |"
    if cache:
        line += f" {i1:,.0f} ({i1 / per['bare-pingora'][2]:.2f}x bare) | {d1:,.0f} ({d1 / per['bare-pingora'][3]:.2f}x bare) |"
    print(line)
PY
