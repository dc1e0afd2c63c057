#!/usr/bin/env bash
# More than one proxy thread and Pingora 0.9's upstream pool (cloudflare/pingora#998): tiny
# requests through blueshift with one thread (its default), with N threads (one work-stealing
# runtime, blueshift's default for N > 1) and with N threads and `work_stealing: false` (a
# runtime per thread), counting TCP connects on the machine (wrk's own 32 included) and Pingora's
# "failed to acquire reusable stream" errors, each a pooled upstream connection missed and a new
# one opened.
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
run() {
  local name=$1 conf=$2
  printf 'version: 1\n%b' "$conf" >"$WORK/$name.yaml"
  RUST_LOG=warn "$ROOT/target/release/blueshift" serve -p "$WORK/policy.yaml" \
    --pingora-conf "$WORK/$name.yaml" 2>"$WORK/$name.log" & pid=$!
  wait_port "$BS_PORT"
  sleep 1   # first health checks
  before=$(connects)
  requests=$(wrk -t1 -c32 -d"${SECS}s" "http://127.0.0.1:$BS_PORT/predict" | awk '/requests in/ {print $1}')
  after=$(connects)
  kill "$pid"; wait "$pid" 2>/dev/null || true
  misses=$(grep -c 'ERROR.*failed to acquire reusable stream' "$WORK/$name.log" || true)
  echo "$name: $requests requests, $((after - before)) TCP connects, $misses 'failed to acquire reusable stream' errors"
}
run "threads 1" 'threads: 1\n'
run "threads $N" "threads: $N\n"
run "threads $N, work_stealing false" "threads: $N\nwork_stealing: false\n"
