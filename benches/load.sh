#!/usr/bin/env bash
# blueshift vs nginx vs HAProxy under the same load, on the same box, in alternating rounds.
#
#   benches/load.sh [seconds-per-run] [rounds]     (default 10 s, 3 rounds; then benches/protocols.sh)
#
# A fixed nginx backend answers a small JSON body on two ports (blue/green). In front of it:
# blueshift (90/10 split, cookie affinity, override header, metrics), the same blueshift with
# quality gates on (every answer read for its label and score: "blueshift-q"), blueshift serving
# everything from blue while every request is also mirrored to green and the answers compared
# ("blueshift-s", a 100% shadow), nginx (weighted upstream, keep-alive) and HAProxy (weights,
# cookie insert, keep-alive), one worker/thread each, plus the backend directly as the ceiling. wrk (1 thread) drives each with 1, 32 and 256 connections;
# rounds alternate between the targets so drift on this shared machine hits all alike. The table
# gives the median round: req/s, p50, p99, CPU-seconds per 100k requests (the proxy's processes
# only), peak RSS, and ratios to nginx. Then each proxy holds 10,000 idle keep-alive client
# connections and its RSS is read.
source "$(dirname "$0")/common.sh"
SECS=${1:-10}
ROUNDS=${2:-3}
need_tools nginx haproxy wrk curl python3
[ -x "$ROOT/target/release/blueshift" ] || (cd "$ROOT" && cargo build --release)
ulimit -n "$(ulimit -Hn)"   # 10,000 idle connections need the fds
TCK=$(getconf CLK_TCK)

start_backend
start_blueshift
BS_PID=${PIDS[0]}
BSQ_PORT=${BSQ_PORT:-18083}
start_blueshift_with "$WORK/policy-q.yaml" "$BSQ_PORT" "${BSQ_ADMIN:-19902}" \
  "quality: {prediction: /prediction, score: /confidence}"$'\n'
BSQ_PID=$BS_PID_LAST
BSS_PORT=${BSS_PORT:-18084}
start_blueshift_with "$WORK/policy-s.yaml" "$BSS_PORT" "${BSS_ADMIN:-19903}" \
  "shadow: {color: green, percent: 100}"$'\n' 100 0
BSS_PID=$BS_PID_LAST
start_nginx_proxy
start_haproxy

pids_of() {
  case $1 in
    blueshift) echo "$BS_PID" ;;
    blueshift-q) echo "$BSQ_PID" ;;
    blueshift-s) echo "$BSS_PID" ;;
    nginx) echo "$(cat "$WORK/proxy/nginx.pid") $(pgrep -P "$(cat "$WORK/proxy/nginx.pid")" | tr '\n' ' ')" ;;
    haproxy) cat "$WORK/haproxy.pid" ;;
    direct) echo "" ;;
  esac
}
port_of() {
  case $1 in
    blueshift) echo "$BS_PORT" ;; blueshift-q) echo "$BSQ_PORT" ;; blueshift-s) echo "$BSS_PORT" ;; nginx) echo "$NGINX_PORT" ;; haproxy) echo "$HAPROXY_PORT" ;; direct) echo "$BLUE_PORT" ;;
  esac
}
cpu_ticks() { local t=0; for p in $1; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo $t; }
rss_kb() { local t=0; for p in $1; do t=$((t + $(awk '/VmRSS/ {print $2}' "/proc/$p/status"))); done; echo $t; }
hwm_kb() { local t=0; for p in $1; do t=$((t + $(awk '/VmHWM/ {print $2}' "/proc/$p/status"))); done; echo $t; }
to_ms() { awk -v v="$1" 'BEGIN { if (v ~ /us$/) printf "%.3f", v/1000; else if (v ~ /ms$/) printf "%.3f", v+0; else if (v ~ /s$/) printf "%.3f", v*1000; else print "nan" }'; }

TARGETS=(direct blueshift blueshift-q blueshift-s nginx haproxy)
RESULTS="$WORK/results"
: >"$RESULTS"
for conns in 1 32 256; do
  for round in $(seq "$ROUNDS"); do
    for t in "${TARGETS[@]}"; do
      pids=$(pids_of "$t")
      c0=$(cpu_ticks "$pids")
      out=$(wrk -t1 -c"$conns" -d"${SECS}s" --latency "http://127.0.0.1:$(port_of "$t")/predict")
      c1=$(cpu_ticks "$pids")
      reqs=$(echo "$out" | awk '/requests in/ {print $1}')
      rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
      p50=$(to_ms "$(echo "$out" | awk '$1=="50%" {print $2}')")
      p99=$(to_ms "$(echo "$out" | awk '$1=="99%" {print $2}')")
      errs=$(echo "$out" | awk '/Socket errors|Non-2xx/ {n++} END {print n+0}')
      cpu=$(awk -v d=$((c1 - c0)) -v r="$reqs" -v tck="$TCK" 'BEGIN { if (r > 0) printf "%.2f", d / tck / r * 100000; else print "nan" }')
      echo "$conns $round $t $rps $p50 $p99 $cpu $errs" >>"$RESULTS"
      echo "c=$conns round=$round $t: $rps req/s p50 ${p50}ms p99 ${p99}ms cpu/100k ${cpu}s errors-lines $errs" >&2
    done
  done
done

echo
echo "## wrk -t1, ${SECS}s per run, median of $ROUNDS alternating rounds ($(nproc) cores, $(date -u +%F))"
echo
echo "| conns | target | req/s | p50 ms | p99 ms | CPU s / 100k req | peak RSS MiB | req/s vs nginx | p99 vs nginx | CPU vs nginx |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
python3 - "$RESULTS" <<'PY' "$(hwm_kb "$(pids_of blueshift)")" "$(hwm_kb "$(pids_of nginx)")" "$(hwm_kb "$(pids_of haproxy)")" "$(hwm_kb "$(pids_of blueshift-q)")" "$(hwm_kb "$(pids_of blueshift-s)")"
import sys, statistics as st
rows = [l.split() for l in open(sys.argv[1])]
hwm = {"blueshift": int(sys.argv[2]), "nginx": int(sys.argv[3]), "haproxy": int(sys.argv[4]), "blueshift-q": int(sys.argv[5]), "blueshift-s": int(sys.argv[6])}
targets = ["direct", "blueshift", "blueshift-q", "blueshift-s", "nginx", "haproxy"]
med = {}
for conns in sorted({int(r[0]) for r in rows}):
    for t in targets:
        rs = [r for r in rows if int(r[0]) == conns and r[2] == t]
        f = lambda i: st.median(float(r[i]) for r in rs)
        med[(conns, t)] = (f(3), f(4), f(5), f(6) if t != "direct" else float("nan"))
    n = med[(conns, "nginx")]
    for t in targets:
        rps, p50, p99, cpu = med[(conns, t)]
        mem = f"{hwm[t] / 1024:.1f}" if t in hwm else "-"
        cpu_s = "-" if t == "direct" else f"{cpu:.2f}"
        cpu_r = "-" if t == "direct" else f"{cpu / n[3]:.2f}x"
        print(f"| {conns} | {t} | {rps:,.0f} | {p50:.2f} | {p99:.2f} | {cpu_s} | {mem} | {rps / n[0]:.2f}x | {p99 / n[2]:.2f}x | {cpu_r} |")
print()
print("quality gates on vs off (blueshift-q / blueshift):")
for conns in sorted({int(r[0]) for r in rows}):
    q, b = med[(conns, "blueshift-q")], med[(conns, "blueshift")]
    print(f"- {conns} connections: {q[0] / b[0]:.2f}x the req/s, {q[3] / b[3]:.2f}x the CPU per request, {q[2] / b[2]:.2f}x the p99")
print()
print("a 100% shadow on vs off (blueshift-s / blueshift; CPU per request the clients were served):")
for conns in sorted({int(r[0]) for r in rows}):
    q, b = med[(conns, "blueshift-s")], med[(conns, "blueshift")]
    print(f"- {conns} connections: {q[0] / b[0]:.2f}x the req/s, {q[3] / b[3]:.2f}x the CPU per request, {q[1] / b[1]:.2f}x the p50, {q[2] / b[2]:.2f}x the p99")
PY

echo
echo "## idle keep-alive client connections: RSS after they are open"
echo "(10,000 each; HAProxy gets 9,900: it reserves two fds per connection and this sandbox's hard limit is 20,000)"
idle() { hold_idle "$1" "$2" 4; }
for t in blueshift nginx haproxy; do
  before=$(rss_kb "$(pids_of "$t")")
  n=10000; [ "$t" = haproxy ] && n=9900
  idle "$(port_of "$t")" "$n" >"$WORK/idle.out" &
  ipid=$!
  until [ -s "$WORK/idle.out" ] || ! kill -0 $ipid 2>/dev/null; do sleep 0.1; done
  sleep 1
  after=$(rss_kb "$(pids_of "$t")")
  wait $ipid || true
  printf '%-10s %6.1f MiB -> %6.1f MiB with %s idle connections (%.1f KiB each)\n' "$t" \
    "$(echo "$before/1024" | bc -l)" "$(echo "$after/1024" | bc -l)" "$(cat "$WORK/idle.out")" "$(echo "($after-$before)/$n" | bc -l)"
  : >"$WORK/idle.out"
done

# TLS and HTTP/2 rows (benches/protocols.sh), after this run's processes are gone; PROTOCOLS=0 skips them.
if [ "${PROTOCOLS:-1}" != 0 ]; then
  cleanup
  trap - EXIT
  exec "$(dirname "$0")/protocols.sh" "$SECS" "$ROUNDS"
fi
