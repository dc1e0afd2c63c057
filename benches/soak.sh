#!/usr/bin/env bash
# Soak: an hour-class mixed workload against one blueshift, with faults injected, and what it
# left behind:
#
#   benches/soak.sh [seconds]          (default 1800; TESTING.md has the numbers of one run)
#
# Workload, all at once for the whole run:
#   - steady HTTP/1.1 load: wrk, 4 connections, each at most 200 requests/s (a Lua delay);
#   - HTTP/2 over TLS: h2load bursts (200 requests, 2 connections x 4 streams) every 5 s;
#   - HTTPS/1.1: a new curl connection (full handshake) every 0.5 s;
#   - the policy rewritten every second (a real change each time: a hot reload);
#   - a rollout of green running, with quality gates on; every 30 s green's model server is
#     stopped for 5 s and started again (the fault), and once green is healthy a rollback, if
#     there was one, is cleared with `blueshift resume`;
#   - `blueshift pause`, `resume` and `status` every 10 s.
# Reported: requests and failures per client (every request is a GET, which blueshift retries
# on the stable color when green dies, so the goal is 0 failures), reloads applied and refused,
# faults injected and rollbacks seen, and blueshift's RSS and open descriptors after warm-up, at
# their highest, and at the end (goal: flat).
source "$(dirname "$0")/common.sh"
SECS=${1:-1800}
need_tools nginx wrk curl h2load
[ -x "$ROOT/target/release/blueshift" ] || (cd "$ROOT" && cargo build --release)
BS=$ROOT/target/release/blueshift
BS_TLS=${BS_TLS:-18453}
"$BS" demo --prepare >/dev/null
CERT=$ROOT/conf/demo-tls/cert.pem; KEY=$ROOT/conf/demo-tls/key.pem

start_backend
# Green on its own nginx, so it can be stopped and started alone.
GREEN_SOAK=$((GREEN_PORT + 10))
mkdir -p "$WORK/green/logs"
cat >"$WORK/green/nginx.conf" <<EOF
worker_processes 1;
pid $WORK/green/nginx.pid;
error_log $WORK/green/error.log error;
events { worker_connections 4096; }
http {
  access_log off;
  server { listen 127.0.0.1:$GREEN_SOAK; location / { default_type application/json; return 200 '{"prediction":"positive","confidence":0.93,"model_version":"v2"}'; } }
}
EOF
green_up() { nginx -p "$WORK/green" -c "$WORK/green/nginx.conf"; }
green_down() { [ -f "$WORK/green/nginx.pid" ] && kill "$(cat "$WORK/green/nginx.pid")" 2>/dev/null; rm -f "$WORK/green/nginx.pid"; }
green_up
trap 'green_down; cleanup' EXIT

policy() {
  cat <<EOF
listen:
  - 127.0.0.1:$BS_PORT
  - {addr: 127.0.0.1:$BS_TLS, tls: {cert: $CERT, key: $KEY}}
admin: 127.0.0.1:$BS_ADMIN
colors:
  blue:
    backends: [{addr: 127.0.0.1:$BLUE_PORT}]
  green:
    backends: [{addr: 127.0.0.1:$GREEN_SOAK}]
stable: blue
split: {blue: 100, green: 0}
health: {interval: 500ms, unhealthy_after: 2, healthy_after: 2}
rollback: {max_error_rate: 0.05, window: 10s, min_requests: $1}
quality: {prediction: /prediction, score: /confidence, max_score_shift: 0.2, min_samples: 50}
rollout:
  candidate: green
  steps:
    - {weight: 10, hold: 10s}
    - {weight: 50, hold: 10s}
    - {weight: 50, hold: 24h}
EOF
}
policy 20 >"$WORK/policy.yaml"
RUST_LOG=error "$BS" serve -p "$WORK/policy.yaml" 2>"$WORK/blueshift.log" &
PID=$!; PIDS+=($PID)
wait_port "$BS_PORT"; wait_port "$BS_TLS"
admin() { "$BS" "$@" --admin "127.0.0.1:$BS_ADMIN" >/dev/null 2>&1; }
metric() { curl -s "127.0.0.1:$BS_ADMIN/metrics" | awk -v m="$1" 'index($0, m) == 1 {s += $NF} END {print s + 0}'; }
rss() { awk '/VmRSS/ {print $2}' "/proc/$PID/status"; }
fds() { ls "/proc/$PID/fd" | wc -l; }

cat >"$WORK/paced.lua" <<'EOF'
function delay() return 5 end
EOF
wrk -t1 -c4 -d"${SECS}s" --timeout 5s -s "$WORK/paced.lua" "http://127.0.0.1:$BS_PORT/predict" >"$WORK/wrk.out" 2>&1 &
WRK=$!; PIDS+=($WRK)

( end=$((SECONDS + SECS))
  while [ $SECONDS -lt $end ]; do
    h2load -n 200 -c 2 -m 4 "https://127.0.0.1:$BS_TLS/predict" 2>&1 | awk '/^requests:/ {print $2, $2 - $8}'   # total, not succeeded
    sleep 5
  done >"$WORK/h2.out" ) &
H2=$!; PIDS+=($H2)

( end=$((SECONDS + SECS))
  while [ $SECONDS -lt $end ]; do
    curl -sk -o /dev/null -w '%{http_code}\n' --max-time 5 "https://127.0.0.1:$BS_TLS/predict" || echo 000
    sleep 0.5
  done >"$WORK/curl.out" ) &
CURL=$!; PIDS+=($CURL)

sleep 10
rss0=$(rss); fds0=$(fds); rss_max=$rss0; fds_max=$fds0
rollbacks0=$(metric blueshift_rollbacks_total)
faults=0; admin_failed=0; t=10
while [ $t -lt "$SECS" ]; do
  sleep 1; t=$((t + 1))
  policy $((20 + t % 2)) >"$WORK/policy.next" && mv "$WORK/policy.next" "$WORK/policy.yaml"
  if [ $((t % 30)) -eq 0 ]; then green_down; faults=$((faults + 1)); fi
  if [ $((t % 30)) -eq 5 ]; then green_up; fi
  if [ $((t % 30)) -eq 15 ]; then
    # Green has been healthy for a while: clear a rollback so the rollout starts again.
    curl -s "127.0.0.1:$BS_ADMIN/status" | grep -q '"state": "rolled_back"' && { admin resume || admin_failed=$((admin_failed + 1)); }
  fi
  if [ $((t % 10)) -eq 3 ]; then admin pause || true; fi
  if [ $((t % 10)) -eq 6 ]; then admin resume || true; admin status || admin_failed=$((admin_failed + 1)); fi
  r=$(rss); f=$(fds)
  [ "$r" -gt "$rss_max" ] && rss_max=$r
  [ "$f" -gt "$fds_max" ] && fds_max=$f
  kill -0 "$PID" || { echo "blueshift died" >&2; exit 1; }
done
wait "$WRK" "$H2" "$CURL" 2>/dev/null || true
rss1=$(rss); fds1=$(fds)
rollbacks=$(( $(metric blueshift_rollbacks_total) - rollbacks0 ))
applied=$(metric 'blueshift_policy_reloads_total{result="ok"}')
refused=$(metric 'blueshift_policy_reloads_total{result="error"}')

wrk_total=$(awk '/requests in/ {print $1}' "$WORK/wrk.out")
wrk_failed=$(awk '/Socket errors/ {gsub(",",""); s=$4+$6+$8+$10} /Non-2xx/ {n=$NF} END {print s+n+0}' "$WORK/wrk.out")
read -r h2_total h2_failed < <(awk '{t += $1; f += $2} END {print t + 0, f + 0}' "$WORK/h2.out")
curl_total=$(wc -l <"$WORK/curl.out"); curl_failed=$(grep -vc '^200$' "$WORK/curl.out" || true)

echo "soak: ${SECS}s, blueshift $("$BS" --version)"
printf '%-22s %10s %8s\n' client requests failed
printf '%-22s %10s %8s\n' "HTTP/1.1 (wrk)" "$wrk_total" "$wrk_failed"
printf '%-22s %10s %8s\n' "HTTP/2 + TLS (h2load)" "$h2_total" "$h2_failed"
printf '%-22s %10s %8s\n' "HTTPS/1.1 (curl)" "$curl_total" "$curl_failed"
echo "reloads: $applied applied, $refused refused; admin calls failed: $admin_failed"
echo "faults injected (green stopped for 5 s): $faults; rollbacks seen: $rollbacks"
echo "RSS KiB: $rss0 after warm-up, $rss_max at most, $rss1 at the end"
echo "open descriptors: $fds0 after warm-up, $fds_max at most, $fds1 at the end"
grep -c . "$WORK/blueshift.log" | xargs echo "error log lines:"
head -5 "$WORK/blueshift.log"
