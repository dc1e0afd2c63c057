#!/usr/bin/env bash
# What more than one proxy thread costs in Pingora 0.9 (cloudflare/pingora#998): tiny requests
# through blueshift with one thread and with N, counting TCP connects on the machine (wrk's own
# 32 included) and Pingora's "failed to acquire reusable stream" errors, each a pooled upstream
# connection missed and a new one opened.
#
#   benches/threads.sh [threads] [seconds]      (default 2 threads, 5 s)
source "$(dirname "$0")/common.sh"
N=${1:-2}
SECS=${2:-5}
need_tools nginx wrk
(cd "$ROOT" && cargo build --release --bin blueshift)
start_backend
bs_policy >"$WORK/policy.yaml"
connects() { awk '/^Tcp:/ {n++} n == 2 && /^Tcp:/ {print $6; exit}' /proc/net/snmp; }
for t in 1 "$N"; do
  printf 'version: 1\nthreads: %s\n' "$t" >"$WORK/threads-$t.yaml"
  RUST_LOG=warn "$ROOT/target/release/blueshift" serve -p "$WORK/policy.yaml" \
    --pingora-conf "$WORK/threads-$t.yaml" 2>"$WORK/log-$t" & pid=$!
  wait_port "$BS_PORT"
  sleep 1   # first health checks
  before=$(connects)
  requests=$(wrk -t1 -c32 -d"${SECS}s" "http://127.0.0.1:$BS_PORT/predict" | awk '/requests in/ {print $1}')
  after=$(connects)
  kill "$pid"; wait "$pid" 2>/dev/null || true
  echo "threads $t: $requests requests, $((after - before)) TCP connects, $(grep -c 'failed to acquire reusable stream' "$WORK/log-$t" || true) 'failed to acquire reusable stream' errors"
done
