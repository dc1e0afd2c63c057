#!/usr/bin/env bash
# A/B of two blueshift binaries (a lever on, a lever off) on tiny requests: the same policy and
# backend, wrk -t1 -c32, alternating rounds, req/s, p99 and the proxy's CPU per request.
#
#   benches/ab.sh BINARY_A BINARY_B [seconds-per-run] [rounds]     (default 8 s, 5 rounds)
#
# Build a variant with the lever reverted and copy it aside, e.g.
#   cargo build --release && cp target/release/blueshift /tmp/bs-a
source "$(dirname "$0")/common.sh"
A=${1:?binary A}; B=${2:?binary B}
SECS=${3:-8}; ROUNDS=${4:-5}
need_tools nginx wrk
TCK=$(getconf CLK_TCK)
start_backend
declare -A PORT=() PID=()
for v in A B; do
  bin=$A; port=$((BS_PORT + 100))
  [ $v = B ] && { bin=$B; port=$((BS_PORT + 102)); }
  admin=$((port + 1))
  BS_PORT=$port BS_ADMIN=$admin bs_policy >"$WORK/policy-$v.yaml"
  RUST_LOG=error "$bin" serve -p "$WORK/policy-$v.yaml" --pingora-conf "$BS_PINGORA_CONF" & PIDS+=($!)
  PID[$v]=$!; PORT[$v]=$port
  wait_port "$port"
done
sleep 2   # first health checks
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
for round in $(seq "$ROUNDS"); do
  for v in A B; do
    c0=$(cpu "${PID[$v]}")
    out=$(wrk -t1 -c32 -d"${SECS}s" --latency "http://127.0.0.1:${PORT[$v]}/predict")
    c1=$(cpu "${PID[$v]}")
    reqs=$(echo "$out" | awk '/requests in/ {print $1}')
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    p99=$(echo "$out" | awk '$1=="99%" {print $2}')
    echo "$v $round $rps $p99 $(echo "($c1 - $c0) / $TCK * 1000000 / $reqs" | bc -l)"
  done
done | tee "$WORK/ab" >&2
python3 - "$WORK/ab" <<'PY'
import statistics as st, sys
rows = [l.split() for l in open(sys.argv[1])]
for v in "AB":
    rs = [r for r in rows if r[0] == v]
    print(f"{v}: req/s median {st.median(float(r[2]) for r in rs):,.0f} "
          f"(range {min(float(r[2]) for r in rs):,.0f}-{max(float(r[2]) for r in rs):,.0f}), "
          f"CPU µs/req median {st.median(float(r[4]) for r in rs):.1f}, p99 {[r[3] for r in rs]}")
a = st.median(float(r[2]) for r in rows if r[0] == "A"); b = st.median(float(r[2]) for r in rows if r[0] == "B")
print(f"B/A req/s: {b / a:.3f}")
PY
