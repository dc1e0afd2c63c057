#!/usr/bin/env bash
# Slow and abusive clients against blueshift, with nginx (its default timeouts) in front of the
# same backend as the reference, and a normal client alongside each attack:
#
#   benches/slow.sh [seconds] [connections]     (default 30 s per attack, 2000 connections)
#
# Attacks (slowhttptest): slow headers (slowloris: a header line every 5 s, never the end), slow
# body (R-U-Dead-Yet: a 1 MiB POST body dribbled every 5 s), slow read (a 1 MiB answer read a few
# bytes a second through a tiny window). The normal client is wrk, 8 connections, for the length
# of the attack. Per proxy and attack: the most attack connections the proxy held open and how
# many were still open when the attack ended, whether
# slowhttptest's own probe ever found the service unavailable, and the normal client's requests
# per second, p50, p99 and errors, next to the same client with no attack.
#
# Then file descriptors: blueshift under a 256-descriptor limit, 400 idle connections opened
# against it. Reported: that it lives, its CPU while accept() fails (Pingora backs off a second
# on EMFILE instead of spinning), that backends stay healthy, and how long after the idle
# connections go (the first-head deadline closes them) a normal request succeeds again.
source "$(dirname "$0")/common.sh"
SECS=${1:-30}
CONNS=${2:-2000}
need_tools nginx wrk curl slowhttptest python3
[ -x "$ROOT/target/release/blueshift" ] || (cd "$ROOT" && cargo build --release)
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
TCK=$(getconf CLK_TCK)

start_backend
bs_policy 100 0 >"$WORK/policy.yaml"
start_blueshift
start_nginx_proxy 100 1

# wrk's summary as "req/s p50 p99 errors".
normal_client() {
  local port=$1 out
  out=$(wrk -t1 -c8 -d"${SECS}s" --latency "http://127.0.0.1:$port/predict" 2>&1)
  local rps p50 p99 errs
  rps=$(awk '/Requests\/sec/ {printf "%.0f", $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  errs=$(awk '/Socket errors/ {gsub(",",""); s=$4+$6+$8+$10} /Non-2xx/ {n=$NF} END {print s+n+0}' <<<"$out")
  echo "$rps $p50 $p99 $errs"
}

# slowhttptest against a port in a mode; prints "most-held held-at-the-end unavailable".
attack() {
  local port=$1 mode=$2 prefix="$WORK/slow-$1-$2"
  local args=(-c "$CONNS" -r 400 -l "$SECS" -p 3 -g -o "$prefix")
  case $mode in
    headers) args+=(-H -i 5 -u "http://127.0.0.1:$port/predict") ;;
    body) args+=(-B -i 5 -s 1048576 -u "http://127.0.0.1:$port/predict") ;;
    read) args+=(-X -k 4 -n 1 -w 16 -y 64 -z 8 -u "http://127.0.0.1:$port/big") ;;
  esac
  slowhttptest "${args[@]}" >/dev/null 2>&1 || true
  # Columns: seconds, closed, pending, connected, service available.
  awk -F, 'NR > 1 { if ($4 > held) held = $4; last = $4; if ($5 ~ /NO/) down++ }
           END { printf "%d %d %s\n", held, last, (down ? down "s" : "never") }' "$prefix.csv"
}

printf '%-10s %-9s %8s %8s %11s %8s %8s %8s %8s\n' proxy attack held at-end unavailable req/s p50 p99 errors
for proxy in blueshift:$BS_PORT nginx:$NGINX_PORT; do
  name=${proxy%%:*}; port=${proxy##*:}
  read -r rps p50 p99 errs < <(normal_client "$port")
  printf '%-10s %-9s %8s %8s %11s %8s %8s %8s %8s\n' "$name" none - - - "$rps" "$p50" "$p99" "$errs"
  for mode in headers body read; do
    attack "$port" "$mode" >"$WORK/attack.out" &
    apid=$!
    sleep 3 # the attack ramps up first
    read -r rps p50 p99 errs < <(SECS=$((SECS - 6)) normal_client "$port")
    wait "$apid"
    read -r held last down <"$WORK/attack.out"
    printf '%-10s %-9s %8s %8s %11s %8s %8s %8s %8s\n' "$name" "$mode" "$held" "$last" "$down" "$rps" "$p50" "$p99" "$errs"
  done
done

echo
echo "== file descriptors: blueshift with ulimit -n 256, 400 idle connections"
FD_PORT=$((BS_PORT + 7)); FD_ADMIN=$((BS_ADMIN + 7))
{ BS_PORT=$FD_PORT BS_ADMIN=$FD_ADMIN bs_policy 100 0; echo "timeouts: {client_header: 5s}"; } >"$WORK/fd.yaml"
(ulimit -n 256; exec env RUST_LOG=off "$ROOT/target/release/blueshift" serve -p "$WORK/fd.yaml" --pingora-conf "$BS_PINGORA_CONF") &
FD_PID=$!; PIDS+=($FD_PID)
wait_port "$FD_PORT"
until curl -sf "127.0.0.1:$FD_ADMIN/status" | grep -q '"healthy": true'; do sleep 0.1; done
cpu() { awk '{print $14 + $15}' "/proc/$FD_PID/stat"; }
python3 - "$FD_PORT" >"$WORK/idle.out" 2>&1 <<'EOF' &
import socket, sys, time
held = []
for _ in range(400):
    try:
        held.append(socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2))
    except OSError:
        break
print(len(held), flush=True)
time.sleep(3)
for s in held:
    s.close()
EOF
IDLE=$!
sleep 1
c0=$(cpu); sleep 2; c1=$(cpu)
during=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "127.0.0.1:$FD_PORT/predict" || true)
wait "$IDLE"
start=$(date +%s%N)
until [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "127.0.0.1:$FD_PORT/predict")" = 200 ]; do
  sleep 0.1
  [ $(( ($(date +%s%N) - start) / 1000000000 )) -lt 30 ] || break
done
recovered=$(( ($(date +%s%N) - start) / 1000000 ))
alive=$(kill -0 "$FD_PID" 2>/dev/null && echo yes || echo NO)
healthy=$(curl -sf "127.0.0.1:$FD_ADMIN/status" | grep -c '"healthy": true' || true)
echo "idle connections opened: $(head -1 "$WORK/idle.out"); normal request while full: ${during:-none}"
echo "CPU while accept() fails: $(( (c1 - c0) * 100 / TCK / 2 ))% of a core; alive: $alive; healthy backends after: $healthy"
echo "a normal request succeeded ${recovered} ms after the idle connections closed"
