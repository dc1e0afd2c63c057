#!/usr/bin/env bash
# Reloading under load, blueshift vs nginx, on the same box.
#
#   benches/reload.sh [seconds]      (needs a release build: cargo build --release)
#
# 1. write-to-applied latency: rewrite blueshift's policy file 20 times, each time timing until
#    /status shows the new revision;
# 2. throughput and errors while the split changes 10 times a second: blueshift by rewriting its
#    policy file, nginx by rewriting its config and `nginx -s reload`; both under the same wrk load
#    (1 thread, 32 keep-alive connections) against the same fixed backend.
source "$(dirname "$0")/common.sh"
SECS=${1:-10}
need_tools nginx wrk curl
[ -x "$ROOT/target/release/blueshift" ] || (cd "$ROOT" && cargo build --release)

start_backend
start_blueshift
start_nginx_proxy

revision() { curl -sf "127.0.0.1:$BS_ADMIN/status" | sed -n 's/.*"revision": \([0-9]*\).*/\1/p'; }

echo "== write-to-applied latency (file watch), 20 edits"
lat=()
for i in $(seq 20); do
  before=$(revision)
  start=$(date +%s%N)
  bs_policy $((50 + i)) $((50 - i)) >"$WORK/policy.yaml.tmp" && mv "$WORK/policy.yaml.tmp" "$WORK/policy.yaml"
  until [ "$(revision)" != "$before" ]; do sleep 0.005; done
  lat+=($(( ($(date +%s%N) - start) / 1000000 )))
done
printf '%s\n' "${lat[@]}" | sort -n | awk '{a[NR]=$1} END {printf "applied after: min %d ms, median %d ms, max %d ms\n", a[1], a[int((NR+1)/2)], a[NR]}'

flip_blueshift() {
  local end=$((SECONDS + SECS)) i=0
  while [ $SECONDS -lt $end ]; do
    i=$((i + 1))
    bs_policy $((i % 2 ? 90 : 50)) $((i % 2 ? 10 : 50)) >"$WORK/policy.yaml.tmp" && mv "$WORK/policy.yaml.tmp" "$WORK/policy.yaml"
    sleep 0.1
  done
  echo "$i" >"$WORK/flips"
}

flip_nginx() {
  local end=$((SECONDS + SECS)) i=0
  while [ $SECONDS -lt $end ]; do
    i=$((i + 1))
    nginx_proxy_conf $((i % 2 ? 90 : 50)) $((i % 2 ? 10 : 50)) >"$WORK/proxy/nginx.conf"
    nginx -p "$WORK/proxy" -c "$WORK/proxy/nginx.conf" -s reload 2>/dev/null
    sleep 0.1
  done
  echo "$i" >"$WORK/flips"
}

run() {
  local name=$1 port=$2 flip=$3 out flipper rev0
  rev0=$(revision)
  $flip &
  flipper=$!
  out=$(wrk -t1 -c32 -d"${SECS}s" --latency "http://127.0.0.1:$port/predict")
  wait "$flipper"
  local rps errs non2xx p99
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  errs=$(echo "$out" | awk '/Socket errors/ {gsub(",","");print $4+$6+$8+$10}')
  non2xx=$(echo "$out" | awk '/Non-2xx/ {print $5}')
  local applied="$(cat "$WORK/flips")"
  [ "$name" = blueshift ] && applied="$applied written, $(( $(revision) - rev0 )) applied"
  printf '%-10s %8s req/s  p99 %-8s  reloads %-22s  socket errors %-5s  non-2xx %s\n' \
    "$name" "$rps" "$p99" "$applied" "${errs:-0}" "${non2xx:-0}"
}

echo "== ${SECS}s of wrk -t1 -c32 while the split flips 10 times a second"
run blueshift "$BS_PORT" flip_blueshift
run nginx "$NGINX_PORT" flip_nginx
echo "== the same without reloads"
noflip() { sleep "$SECS"; echo 0 >"$WORK/flips"; }
run blueshift "$BS_PORT" noflip
run nginx "$NGINX_PORT" noflip
