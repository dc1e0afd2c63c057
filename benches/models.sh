#!/usr/bin/env bash
# Model traffic side by side: the same model server (examples/model.rs) reached directly and
# through blueshift, nginx with its default proxy settings, nginx tuned for model traffic,
# HAProxy, and bare Pingora (examples/bare_pingora.rs with blueshift's client settings: what
# blueshift's own code costs on top of the framework), in alternating rounds, one table:
#
#   benches/models.sh [seconds-per-run] [rounds] [row...]     (default 8 s, 3 rounds, every row)
#
# With BS_BASELINE=path/to/an/earlier/blueshift, that binary runs beside the one built here as
# the target blueshift-before, in the same rounds: a change's cost on every row, in one run.
#
# Rows:
#   sse       token streams: 50 clients reading 40 events 25 ms apart (1 s streams, OpenAI's
#             format); per event, the delay it got (arrival minus when the model wrote it), and
#             the time to the first event (examples/sse_load.rs)
#   body256k  POST of a 256 KiB JSON body (wrk, 8 connections)
#   body4m    POST of a 4 MiB JSON body (wrk, 4 connections)
#   wait2000  a 50 ms model with 2,000 concurrent keep-alive clients (wrk)
#   close     a new connection per request (16 clients, examples/conn_load.rs: latency from
#             connect to the end of the answer)
#   h2        HTTP/2 over TLS, 32 connections x 10 streams (h2load; it reports mean latency)
#   tls       a new TLS connection per request (the same, handshake included; clients resume
#             sessions, as browsers and wrk do)
# Latency columns are added over direct (the plain rows; the TLS rows have no direct run and show
# the whole latency). CPU is the proxy process's own per request (per stream on sse), with its
# user time (its own code, not the kernel's) in brackets; RSS is its highest during the run.
# nginx and HAProxy run one worker/thread, as blueshift runs its proxy on one thread. nginx's
# default client_max_body_size (1m) would refuse the 4 MiB row with 413:
# both nginx configurations raise it to 16m, and keepalive_requests (1,000 by default, after which
# nginx 1.22 closes even an HTTP/2 connection and h2load's requests on it fail). Both also enable
# TLS 1.3 (`ssl_protocols TLSv1.2 TLSv1.3`, nginx's default since 1.23.4; Debian's 1.22 offers
# only TLS 1.2): clients negotiate TLS 1.3 with blueshift and HAProxy, and a resumed TLS 1.2
# handshake (no key exchange) costs about half a TLS 1.3 one, so the rows would otherwise
# compare protocols rather than proxies.
source "$(dirname "$0")/common.sh"
SECS=${1:-8}
ROUNDS=${2:-3}
shift 2 2>/dev/null || shift $# 
ROWS=("$@")
[ ${#ROWS[@]} -gt 0 ] || ROWS=(sse body256k body4m wait2000 close h2 tls)
need_tools nginx haproxy wrk h2load curl python3
(cd "$ROOT" && cargo build --release --bin blueshift --example model --example sse_load --example conn_load --example bare_pingora)
ulimit -n "$(ulimit -Hn)"   # 2,000 clients need 4,000+ descriptors per proxy
TCK=$(getconf CLK_TCK)
NGINX_DEF=${NGINX_DEF:-18181}; NGINX_TUNED=${NGINX_TUNED:-18182}; HAPROXY_M=${HAPROXY_M:-18183}
BARE_M=${BARE_M:-18184}; BARE_TLS=${BARE_TLS:-18447}; BS_TLS=${BS_TLS:-18443}; NGINX_DEF_TLS=${NGINX_DEF_TLS:-18444}; NGINX_TUNED_TLS=${NGINX_TUNED_TLS:-18445}; HAPROXY_TLS=${HAPROXY_TLS:-18446}
start_models
cat "$CERT" "$KEY" >"$WORK/haproxy.pem"
models_policy "$BS_PORT" "$BS_TLS" >"$WORK/policy.yaml"
RUST_LOG=error "$ROOT/target/release/blueshift" serve -p "$WORK/policy.yaml" --pingora-conf "$BS_PINGORA_CONF" & BS=$!; PIDS+=($BS)
wait_port "$BS_TLS"
BEFORE=; BEFORE_PORT=$((BS_PORT + 200)); BEFORE_TLS=$((BS_TLS + 200))
if [ -n "${BS_BASELINE:-}" ]; then
  BS_ADMIN=$((BS_ADMIN + 200)) models_policy "$BEFORE_PORT" "$BEFORE_TLS" >"$WORK/policy-before.yaml"
  RUST_LOG=error "$BS_BASELINE" serve -p "$WORK/policy-before.yaml" --pingora-conf "$BS_PINGORA_CONF" & BEFORE=$!; PIDS+=($BEFORE)
  wait_port "$BEFORE_TLS"
fi

# nginx: name, port, TLS port, upstream block extras, location extras.
start_models_nginx nginx-default "$NGINX_DEF" "$NGINX_DEF_TLS" "" ""
start_models_nginx nginx-tuned "$NGINX_TUNED" "$NGINX_TUNED_TLS" "$TUNED_UPSTREAM" "$TUNED_LOCATION"

cat >"$WORK/haproxy-m.cfg" <<EOF
global
  nbthread 1
  maxconn 9000
defaults
  mode http
  timeout connect 2s
  timeout client 60s
  timeout server 60s
  http-reuse always
  option forwardfor
frontend fe
  bind 127.0.0.1:$HAPROXY_M
  bind 127.0.0.1:$HAPROXY_TLS ssl crt $WORK/haproxy.pem alpn h2,http/1.1
  default_backend models
backend models
  server m1 127.0.0.1:$MODEL_PORT
EOF
haproxy -f "$WORK/haproxy-m.cfg" -D -p "$WORK/haproxy-m.pid"
PIDS+=("$(cat "$WORK/haproxy-m.pid")")
wait_port "$HAPROXY_M"

BARE_CLIENT_LIMITS=1 RUST_LOG=error "$ROOT/target/release/examples/bare_pingora" "127.0.0.1:$BARE_M" \
  "127.0.0.1:$MODEL_PORT" "127.0.0.1:$BARE_TLS" "$CERT" "$KEY" & PIDS+=($!); BARE=$!
wait_port "$BARE_M"; wait_port "$BARE_TLS"

worker() { pgrep -P "$(cat "$WORK/$1/nginx.pid")" | head -1; }
declare -A PID=([blueshift]=$BS [blueshift-before]=$BEFORE [nginx-default]=$(worker nginx-default) [nginx-tuned]=$(worker nginx-tuned) [haproxy]=$(cat "$WORK/haproxy-m.pid") [bare-pingora]=$BARE)
declare -A PORT=([direct]=$MODEL_PORT [blueshift]=$BS_PORT [blueshift-before]=$BEFORE_PORT [nginx-default]=$NGINX_DEF [nginx-tuned]=$NGINX_TUNED [haproxy]=$HAPROXY_M [bare-pingora]=$BARE_M)
declare -A TLSP=([blueshift]=$BS_TLS [blueshift-before]=$BEFORE_TLS [nginx-default]=$NGINX_DEF_TLS [nginx-tuned]=$NGINX_TUNED_TLS [haproxy]=$HAPROXY_TLS [bare-pingora]=$BARE_TLS)
# The process's CPU ticks so far, "user system".
cpu() { [ -n "${1:-}" ] && awk '{print $14, $15}' "/proc/$1/stat" || echo 0 0; }
rss() { [ -n "${1:-}" ] && awk '/^VmRSS/ {print $2}' "/proc/$1/status" || echo 0; }

# JSON bodies of the two sizes, and wrk's script that posts one.
for kib in 256 4096; do
  python3 -c "import sys; n=$kib*1024; sys.stdout.write('{\"inputs\":\"' + 'a'*(n-14) + '\"}')" >"$WORK/body$kib.json"
done
cat >"$WORK/post.lua" <<'EOF'
local f = assert(io.open(os.getenv("BODY_FILE"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
EOF

# wrk's output -> "requests req/s p50ms p99ms errors"
wrk_line() {
  python3 -c '
import re, sys
t = sys.stdin.read()
def ms(v):
    m = re.match(r"([\d.]+)(\w+)", v); x = float(m.group(1))
    return x * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[m.group(2)]
req = re.search(r"(\d+) requests in", t); rps = re.search(r"Requests/sec:\s+([\d.]+)", t)
p50 = re.search(r"^\s+50%\s+(\S+)", t, re.M); p99 = re.search(r"^\s+99%\s+(\S+)", t, re.M)
err = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", t))
non = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
err += int(non.group(1)) if non else 0
print(req.group(1) if req else 0, rps.group(1) if rps else 0, ms(p50.group(1)) if p50 else 0, ms(p99.group(1)) if p99 else 0, err)'
}

# examples/conn_load.rs (16 clients, a new connection per request, TLS if a CA is given) ->
# the same line; its latency is the whole request, connect and handshake included.
conn_line() {
  "$ROOT/target/release/examples/conn_load" "$1" /predict 16 "$SECS" ${2:+"$2"} | python3 -c '
import json, sys
d = json.loads(sys.stdin.read()); s = float(sys.argv[1])
print(d["requests"], d["requests"] / s, d["p50_us"] / 1000, d["p99_us"] / 1000, d["errors"])' "$SECS"
}

# run ROW TARGET -> "units rate p50ms p99ms errors [ttft50 ttft99]"
run() {
  local row=$1 t=$2 port=${PORT[$2]:-} out
  case $row in
    sse)
      out=$("$ROOT/target/release/examples/sse_load" "127.0.0.1:$port" "/stream?events=40&gap=25&stamp=1" 50 "$SECS")
      python3 -c '
import json, sys
d = json.loads(sys.argv[1]); s = float(sys.argv[2])
print(d["streams"], d["events"] / s, d["delay_p50_us"] / 1000, d["delay_p99_us"] / 1000, d["errors"], d["ttft_p50_us"] / 1000, d["ttft_p99_us"] / 1000)' "$out" "$SECS" ;;
    body256k) BODY_FILE=$WORK/body256.json wrk -t1 -c8 -d"${SECS}s" --latency -s "$WORK/post.lua" "http://127.0.0.1:$port/predict" | wrk_line ;;
    body4m)   BODY_FILE=$WORK/body4096.json wrk -t1 -c4 -d"${SECS}s" --latency -s "$WORK/post.lua" "http://127.0.0.1:$port/predict" | wrk_line ;;
    wait2000) wrk -t2 -c2000 -d"${SECS}s" --latency --timeout 10s "http://127.0.0.1:$port/predict?delay=50" | wrk_line ;;
    close)    conn_line "127.0.0.1:$port" ;;
    tls)      conn_line "127.0.0.1:${TLSP[$t]}" "$CERT" ;;
    h2)
      out=$(h2load -c32 -m10 -D "$SECS" "https://localhost:${TLSP[$t]}/predict" 2>&1)
      echo "$out" | python3 -c '
import re, sys
t = sys.stdin.read()
def ms(v):
    m = re.match(r"([\d.]+)(\w+)", v); x = float(m.group(1))
    return x * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]
r = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout", t)
rps = re.search(r"finished in \S+, ([\d.]+) req/s", t)
lat = re.search(r"time for request:\s+\S+\s+\S+\s+(\S+)", t)
print(r.group(2) if r else 0, rps.group(1) if rps else 0, ms(lat.group(1)) if lat else 0, ms(lat.group(1)) if lat else 0, (int(r.group(3)) + int(r.group(4)) + int(r.group(5))) if r else 1)' ;;
  esac
}

RESULTS="$WORK/models"
: >"$RESULTS"
for row in "${ROWS[@]}"; do
  targets=(blueshift ${BEFORE:+blueshift-before} nginx-default nginx-tuned haproxy bare-pingora)
  case $row in h2|tls) ;; *) targets=(direct "${targets[@]}") ;; esac
  for round in $(seq "$ROUNDS"); do
    for t in "${targets[@]}"; do
      pid=${PID[$t]:-}
      peak="$WORK/peak"; echo 0 >"$peak"
      ( while sleep 0.25; do r=$(rss "$pid"); [ "$r" -gt "$(cat "$peak")" ] && echo "$r" >"$peak"; done ) 2>/dev/null &
      sampler=$!
      read -r u0 s0 < <(cpu "$pid")
      line=$(run "$row" "$t")
      read -r u1 s1 < <(cpu "$pid")
      kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null || true
      echo "$row $round $t $((u1 - u0)):$((s1 - s0)) $(cat "$peak") $line" >>"$RESULTS"
      echo "$row round=$round $t: $line" >&2
    done
  done
done

echo
echo "## Model traffic, median of $ROUNDS alternating rounds of ${SECS}s ($(nproc) cores, $(date -u +%F))"
echo
python3 "$ROOT/benches/models_table.py" "$RESULTS" "$TCK"
