#!/usr/bin/env bash
# TLS and HTTP/2 side by side: blueshift, nginx and a bare Pingora proxy (examples/bare_pingora.rs)
# in front of the same backend, with the same certificate, alternating rounds.
#
#   benches/protocols.sh [seconds-per-run] [rounds]     (default 10 s, 3 rounds; load.sh runs it)
#
# Rows: new TLS handshakes per second (wrk, a new connection per request), keep-alive HTTPS
# requests per second (wrk), HTTP/2 over TLS and h2c (h2load, 32 connections x 10 streams; h2load
# reports mean latency, not percentiles).
# CPU is the proxy's own, per request; ratios are to nginx and to bare Pingora.
source "$(dirname "$0")/common.sh"
SECS=${1:-10}
ROUNDS=${2:-3}
need_tools nginx wrk curl python3 h2load
[ -x "$ROOT/target/release/blueshift" ] || (cd "$ROOT" && cargo build --release)
(cd "$ROOT" && cargo build --release --example bare_pingora)
TCK=$(getconf CLK_TCK)
BS_TLS=${BS_TLS:-18443}; NGINX_TLS=${NGINX_TLS:-18444}; BARE_PORT=${BARE_PORT:-18090}; BARE_TLS=${BARE_TLS:-18445}

# One self-signed pair for localhost, used by all three.
"$ROOT/target/release/blueshift" demo --prepare >/dev/null
CERT=$ROOT/conf/demo-tls/cert.pem; KEY=$ROOT/conf/demo-tls/key.pem

start_backend
bs_policy 100 0 | sed "s|^listen: .*|listen: [127.0.0.1:$BS_PORT, {addr: 127.0.0.1:$BS_TLS, tls: {cert: $CERT, key: $KEY}}]|" >"$WORK/policy.yaml"
RUST_LOG=error "$ROOT/target/release/blueshift" serve -p "$WORK/policy.yaml" --pingora-conf "$BS_PINGORA_CONF" &
BS=$!; PIDS+=($BS)
wait_port "$BS_TLS"
"$ROOT/target/release/examples/bare_pingora" "127.0.0.1:$BARE_PORT" "127.0.0.1:$BLUE_PORT" "127.0.0.1:$BARE_TLS" "$CERT" "$KEY" &
BARE=$!; PIDS+=($BARE)
wait_port "$BARE_TLS"
mkdir -p "$WORK/proxy/logs"
cat >"$WORK/proxy/nginx.conf" <<NGX
worker_processes 1;
pid $WORK/proxy/nginx.pid;
error_log $WORK/proxy/error.log error;
events { worker_connections 12000; }
http {
  access_log off;
  keepalive_requests 1000000;
  upstream models { server 127.0.0.1:$BLUE_PORT; keepalive 64; }
  server {
    listen 127.0.0.1:$NGINX_PORT http2;
    listen 127.0.0.1:$NGINX_TLS ssl http2;
    ssl_certificate $CERT; ssl_certificate_key $KEY; ssl_protocols TLSv1.2 TLSv1.3;
    location / {
      proxy_pass http://models; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for; proxy_set_header X-Forwarded-Proto \$scheme;
    }
  }
}
NGX
nginx -p "$WORK/proxy" -c "$WORK/proxy/nginx.conf"
wait_port "$NGINX_TLS"
NGINX=$(pgrep -P "$(cat "$WORK/proxy/nginx.pid")" | head -1)

declare -A PID=([blueshift]=$BS [nginx]=$NGINX [bare-pingora]=$BARE)
declare -A PLAIN=([blueshift]=$BS_PORT [nginx]=$NGINX_PORT [bare-pingora]=$BARE_PORT)
declare -A TLSP=([blueshift]=$BS_TLS [nginx]=$NGINX_TLS [bare-pingora]=$BARE_TLS)
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# run WORKLOAD TARGET -> "reqs rps p99ms"
run() {
  local w=$1 t=$2 out
  case $w in
    handshakes) out=$(wrk -t1 -c32 -d"${SECS}s" --latency -H "Connection: close" "https://localhost:${TLSP[$t]}/predict") ;;
    https)      out=$(wrk -t1 -c32 -d"${SECS}s" --latency "https://localhost:${TLSP[$t]}/predict") ;;
    h2)         out=$(h2load -c32 -m10 -D "$SECS" "https://localhost:${TLSP[$t]}/predict" 2>&1) ;;
    h2c)        out=$(h2load -c32 -m10 -D "$SECS" "http://127.0.0.1:${PLAIN[$t]}/predict" 2>&1) ;;
  esac
  case $w in
    handshakes|https)
      echo "$(echo "$out" | awk '/requests in/ {print $1}') $(echo "$out" | awk '/Requests\/sec/ {print $2}') $(echo "$out" | awk '$1=="99%" {print $2}')" ;;
    *)
      local done p99
      done=$(echo "$out" | awk '/^requests:/ {print $8}')
      p99=$(echo "$out" | awk '/^time for request:/ {print $6}')
      echo "$done $(echo "$out" | awk '/^finished in/ {print $4}') $p99" ;;
  esac
}

RESULTS="$WORK/protocols"
: >"$RESULTS"
for w in handshakes https h2 h2c; do
  for round in $(seq "$ROUNDS"); do
    for t in blueshift nginx bare-pingora; do
      c0=$(cpu "${PID[$t]}")
      read -r reqs rps p99 < <(run "$w" "$t")
      c1=$(cpu "${PID[$t]}")
      echo "$w $round $t $reqs $rps $p99 $((c1 - c0))" >>"$RESULTS"
      echo "$w round=$round $t: $rps req/s ($reqs done) p99 $p99" >&2
    done
  done
done

echo
echo "## TLS and HTTP/2, median of $ROUNDS alternating rounds of ${SECS}s ($(nproc) cores, $(date -u +%F))"
echo
echo "| workload | target | req/s | latency (wrk: p99, h2load: mean) | CPU s / 100k req | req/s vs nginx | req/s vs bare Pingora |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
python3 - "$RESULTS" "$TCK" <<'PY'
import re, sys, statistics as st
rows = [l.split() for l in open(sys.argv[1])]
tck = int(sys.argv[2])
label = {"handshakes": "new TLS connection per request (wrk)", "https": "keep-alive HTTPS (wrk)",
         "h2": "HTTP/2 over TLS (h2load, 32 x 10 streams)", "h2c": "h2c (h2load, 32 x 10 streams)"}
def num(v):
    m = re.match(r"([\d.]+)(\w*)", v)
    x = float(m.group(1)); u = m.group(2)
    return x * {"us": 0.001, "ms": 1, "s": 1000}.get(u, 1)
for w in ["handshakes", "https", "h2", "h2c"]:
    med = {}
    for t in ["blueshift", "nginx", "bare-pingora"]:
        rs = [r for r in rows if r[0] == w and r[2] == t and r[3] not in ("", "0")]
        if not rs:
            continue
        rps = st.median(float(r[4]) for r in rs)
        p99 = st.median(num(r[5]) for r in rs)
        cpu = st.median(int(r[6]) / tck / max(int(r[3]), 1) * 100000 for r in rs)
        med[t] = (rps, p99, cpu)
    for t, (rps, p99, cpu) in med.items():
        n, b = med.get("nginx"), med.get("bare-pingora")
        vs = lambda o: f"{rps / o[0]:.2f}x" if o else "-"
        print(f"| {label[w]} | {t} | {rps:,.0f} | {p99:.2f} ms | {cpu:.2f} | {vs(n)} | {vs(b)} |")
PY
