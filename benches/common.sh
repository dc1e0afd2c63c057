# Shared pieces of the load benchmarks: a fixed nginx backend (blue/green), blueshift, and nginx
# and HAProxy as proxies, all on loopback, all stopped on exit. Source it; do not run it.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=$(mktemp -d /tmp/blueshift-bench.XXXXXX)
BLUE_PORT=${BLUE_PORT:-15001}
GREEN_PORT=${GREEN_PORT:-15002}
BS_PORT=${BS_PORT:-18080}
BS_ADMIN=${BS_ADMIN:-19901}
NGINX_PORT=${NGINX_PORT:-18081}
HAPROXY_PORT=${HAPROXY_PORT:-18082}
PIDS=()
# The blueshift under test; BS_BIN=path runs another build (an earlier commit's, say) instead.
BS_BIN=${BS_BIN:-$ROOT/target/release/blueshift}
# Every proxy here runs one worker, as the nginx and HAProxy it is compared with do: blueshift
# gets a Pingora conf that says `threads: 1` (its default too), whatever its default becomes.
BS_PINGORA_CONF=${BS_PINGORA_CONF:-$WORK/pingora.yaml}
[ -e "$BS_PINGORA_CONF" ] || printf 'version: 1\nthreads: 1\n' >"$BS_PINGORA_CONF"

cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  [ -f "$WORK/backend/nginx.pid" ] && kill "$(cat "$WORK/backend/nginx.pid")" 2>/dev/null || true
  [ -f "$WORK/proxy/nginx.pid" ] && kill "$(cat "$WORK/proxy/nginx.pid")" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

need_tools() {
  local missing=()
  for t in "$@"; do command -v "$t" >/dev/null 2>&1 || missing+=("$t"); done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]}" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

# Building blueshift needs cmake (Pingora's zlib-ng) and a C compiler, as `make demo` does.
"$ROOT/scripts/setup.sh"

wait_port() {
  for _ in $(seq 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "nothing listens on :$1" >&2
  return 1
}

# A fixed JSON backend on two ports, like a model server that answers instantly.
start_backend() {
  mkdir -p "$WORK/backend/logs"
  # A 1 MiB answer on blue's /big, for clients that read slowly.
  head -c 1048576 /dev/zero | tr '\0' 'a' >"$WORK/backend/big.json"
  cat >"$WORK/backend/nginx.conf" <<EOF
worker_processes 1;
pid $WORK/backend/nginx.pid;
error_log $WORK/backend/error.log error;
events { worker_connections 12000; }
http {
  access_log off;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$BLUE_PORT;
    location / { default_type application/json; return 200 '{"prediction":"positive","confidence":0.87,"model_version":"v1"}'; }
    location = /big { default_type application/json; alias $WORK/backend/big.json; }
  }
  server { listen 127.0.0.1:$GREEN_PORT; location / { default_type application/json; return 200 '{"prediction":"positive","confidence":0.93,"model_version":"v2"}'; } }
}
EOF
  nginx -p "$WORK/backend" -c "$WORK/backend/nginx.conf"
  wait_port "$BLUE_PORT"; wait_port "$GREEN_PORT"
}

# blueshift with a 90/10 split, cookie affinity and metrics on.
bs_policy() {
  cat <<EOF
listen: 127.0.0.1:$BS_PORT
admin: 127.0.0.1:$BS_ADMIN
colors:
  blue:
    backends: [{addr: 127.0.0.1:$BLUE_PORT}]
  green:
    backends: [{addr: 127.0.0.1:$GREEN_PORT}]
stable: blue
split: {blue: ${1:-90}, green: ${2:-10}}
affinity: {cookie: blueshift}
override_header: x-blueshift-color
EOF
}

start_blueshift() {
  start_blueshift_with "$WORK/policy.yaml" "$BS_PORT" "$BS_ADMIN" ""
}

# A blueshift on other ports, with a policy section added (say, quality gates) and optionally
# another split (blue green): its pid in BS_PID_LAST.
start_blueshift_with() {
  local file=$1 port=$2 admin=$3 extra=$4
  { BS_PORT=$port BS_ADMIN=$admin bs_policy "${5:-90}" "${6:-10}"; printf '%s' "$extra"; } >"$file"
  RUST_LOG=error "$BS_BIN" serve -p "$file" --pingora-conf "$BS_PINGORA_CONF" &
  PIDS+=($!)
  BS_PID_LAST=$!
  wait_port "$port"
  for _ in $(seq 100); do
    curl -sf "127.0.0.1:$admin/status" | grep -q '"health": "unknown"' || return 0
    sleep 0.05
  done
}

# nginx as the proxy: weighted upstream, keep-alive to the backend.
start_nginx_proxy() {
  mkdir -p "$WORK/proxy/logs"
  nginx_proxy_conf "${1:-90}" "${2:-10}" >"$WORK/proxy/nginx.conf"
  nginx -p "$WORK/proxy" -c "$WORK/proxy/nginx.conf"
  wait_port "$NGINX_PORT"
}

nginx_proxy_conf() {
  cat <<EOF
worker_processes 1;
pid $WORK/proxy/nginx.pid;
error_log $WORK/proxy/error.log error;
events { worker_connections 12000; }
http {
  access_log off;
  keepalive_requests 1000000;
  upstream models { server 127.0.0.1:$BLUE_PORT weight=$1; server 127.0.0.1:$GREEN_PORT weight=$2; keepalive 64; }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location / {
      proxy_pass http://models; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for; proxy_set_header X-Forwarded-Proto \$scheme;
    }
  }
}
EOF
}

# HAProxy: weights and cookie insert, keep-alive to the backend.
start_haproxy() {
  cat >"$WORK/haproxy.cfg" <<EOF
global
  nbthread 1
  maxconn 9990
defaults
  mode http
  timeout connect 2s
  timeout client 60s
  timeout server 60s
  http-reuse always
  option forwardfor
frontend fe
  bind 127.0.0.1:$HAPROXY_PORT
  default_backend models
  http-request set-header X-Forwarded-Proto http unless { req.hdr(x-forwarded-proto) -m found }
backend models
  balance random
  cookie blueshift insert indirect nocache
  server blue 127.0.0.1:$BLUE_PORT weight 90 cookie blue
  server green 127.0.0.1:$GREEN_PORT weight 10 cookie green
EOF
  haproxy -f "$WORK/haproxy.cfg" -D -p "$WORK/haproxy.pid"
  PIDS+=("$(cat "$WORK/haproxy.pid")")
  wait_port "$HAPROXY_PORT"
}

# hold_idle PORT N [SECONDS]: opens N keep-alive connections to PORT, one GET /predict on each,
# prints N once all are open, then holds them idle SECONDS (default 4) before closing.
hold_idle() {
  python3 - "$1" "$2" "${3:-4}" <<'PY'
import asyncio, sys
port, total, hold = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
async def one(i):
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(b"GET /predict HTTP/1.1\r\nhost: bench\r\n\r\n")
    await w.drain()
    head = await r.readuntil(b"\r\n\r\n")
    n = int([l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0].split(b":")[1])
    await r.readexactly(n)
    return r, w
async def main():
    conns = []
    for i in range(0, total, 500):
        conns += await asyncio.gather(*(one(j) for j in range(i, min(i + 500, total))))
    print(len(conns), flush=True)
    await asyncio.sleep(hold)
asyncio.run(main())
PY
}

# The model benchmarks' pieces (benches/models.sh; benches/instructions.sh sse|h2): the demo's
# model server (examples/model.rs) as blue on MODEL_PORT and green on MODEL2_PORT, and the demo's
# TLS certificate in CERT and KEY.
MODEL_PORT=${MODEL_PORT:-15101}
MODEL2_PORT=${MODEL2_PORT:-15102}
start_models() {
  "$ROOT/target/release/blueshift" demo --prepare >/dev/null
  CERT=$ROOT/conf/demo-tls/cert.pem
  KEY=$ROOT/conf/demo-tls/key.pem
  "$ROOT/target/release/examples/model" "127.0.0.1:$MODEL_PORT" v1 2>/dev/null & PIDS+=($!)
  "$ROOT/target/release/examples/model" "127.0.0.1:$MODEL2_PORT" v2 2>/dev/null & PIDS+=($!)
  wait_port "$MODEL_PORT"
  wait_port "$MODEL2_PORT"
}

# blueshift in front of the models as users run it: two colors (all traffic on blue), cookie
# affinity, health checks; plain HTTP on $1 and TLS on $2.
models_policy() {
  cat <<EOF
listen:
  - 127.0.0.1:$1
  - {addr: 127.0.0.1:$2, tls: {cert: $CERT, key: $KEY}}
admin: 127.0.0.1:$BS_ADMIN
colors:
  blue:
    backends: [{addr: 127.0.0.1:$MODEL_PORT}]
  green:
    backends: [{addr: 127.0.0.1:$MODEL2_PORT}]
stable: blue
split: {blue: 100, green: 0}
affinity: {cookie: blueshift}
EOF
}

# nginx in front of the models, one worker, written to $WORK/$1/nginx.conf: plain HTTP on $2,
# TLS with HTTP/2 on $3, $4 added to the upstream block and $5 to the location. Empty extras give
# nginx's default proxy settings; TUNED_UPSTREAM and TUNED_LOCATION tune it for model traffic.
TUNED_UPSTREAM="keepalive 512;"
TUNED_LOCATION='proxy_http_version 1.1; proxy_set_header Connection ""; proxy_buffering off; proxy_request_buffering off;'
models_nginx_conf() {
  mkdir -p "$WORK/$1/logs"
  cat >"$WORK/$1/nginx.conf" <<EOF
worker_processes 1;
pid $WORK/$1/nginx.pid;
error_log $WORK/$1/error.log error;
worker_rlimit_nofile 16384;
events { worker_connections 16000; }
http {
  access_log off;
  client_max_body_size 16m;
  keepalive_requests 1000000;   # nginx 1.22 closes an HTTP/2 connection after 1,000 requests
  upstream models { server 127.0.0.1:$MODEL_PORT; $4 }
  server {
    listen 127.0.0.1:$2;
    listen 127.0.0.1:$3 ssl http2;
    ssl_certificate $CERT; ssl_certificate_key $KEY; ssl_protocols TLSv1.2 TLSv1.3;
    location / { proxy_pass http://models; $5 }
  }
}
EOF
}

# models_nginx_conf's nginx, started: its pid joins PIDS, and it listens on $2 when this returns.
start_models_nginx() {
  models_nginx_conf "$@"
  nginx -p "$WORK/$1" -c "$WORK/$1/nginx.conf"
  PIDS+=("$(cat "$WORK/$1/nginx.pid")")
  wait_port "$2"
}
