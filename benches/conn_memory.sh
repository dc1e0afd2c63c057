#!/usr/bin/env bash
# What an idle keep-alive client connection costs blueshift, and what makes it up: RSS per
# connection (and bare Pingora's, with blueshift's read buffer and with its own), then a heap
# profile (heaptrack) of blueshift in the same conditions, its peak consumers grouped by where
# they were allocated.
#
#   benches/conn_memory.sh [connections]      (default 2000)
source "$(dirname "$0")/common.sh"
N=${1:-2000}
need_tools heaptrack python3
(cd "$ROOT" && cargo build --release --bin blueshift --example model --example bare_pingora)
# The profiled build keeps glibc's malloc (heaptrack cannot see mimalloc's), in its own directory.
(cd "$ROOT" && cargo build --release --bin blueshift --features system-alloc --target-dir target/profile)
ulimit -n "$(ulimit -Hn)"
MODEL_PORT=${MODEL_PORT:-15101}
"$ROOT/target/release/examples/model" "127.0.0.1:$MODEL_PORT" v1 2>/dev/null & PIDS+=($!)
wait_port "$MODEL_PORT"
cat >"$WORK/policy.yaml" <<EOF
listen: 127.0.0.1:$BS_PORT
admin: 127.0.0.1:$BS_ADMIN
colors:
  blue:
    backends: [{addr: 127.0.0.1:$MODEL_PORT}]
EOF

rss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

# 1. RSS per idle connection, without a profiler: blueshift, then bare Pingora with blueshift's
# client settings and read buffer (the framework's own floor), then bare Pingora as it comes.
rss_per_connection() {
  local name=$1 port=$2
  shift 2
  "$@" & local pid=$!
  wait_port "$port"; sleep 1
  local before after
  before=$(rss $pid)
  rm -f "$WORK/held"
  hold_idle "$port" "$N" 3 >"$WORK/held" & local holder=$!
  until [ -s "$WORK/held" ]; do sleep 0.1; done
  after=$(rss $pid)
  wait $holder
  kill $pid; wait $pid 2>/dev/null || true
  echo "RSS, $name: $((before / 1024)) MiB idle, $((after / 1024)) MiB with $N idle connections: $(( (after - before) / N )) KiB each"
}
RUST_LOG=error rss_per_connection blueshift "$BS_PORT" "$ROOT/target/release/blueshift" serve -p "$WORK/policy.yaml" --pingora-conf "$BS_PINGORA_CONF"
BARE_CLIENT_LIMITS=1 BARE_READ_BUFFER=4096 rss_per_connection "bare Pingora, a 4 KiB read buffer" 18382 \
  "$ROOT/target/release/examples/bare_pingora" 127.0.0.1:18382 "127.0.0.1:$MODEL_PORT"
BARE_CLIENT_LIMITS=1 rss_per_connection "bare Pingora, its 64 KiB read buffer" 18382 \
  "$ROOT/target/release/examples/bare_pingora" 127.0.0.1:18382 "127.0.0.1:$MODEL_PORT"

# 2. The same under heaptrack: what is live at the peak, by allocation site.
RUST_LOG=error heaptrack -o "$WORK/heap" "$ROOT/target/profile/release/blueshift" serve -p "$WORK/policy.yaml" --pingora-conf "$BS_PINGORA_CONF" >/dev/null 2>&1 & HT=$!
for _ in $(seq 300); do curl -sf "127.0.0.1:$BS_PORT/predict" >/dev/null && break; sleep 0.1; done   # slow to start
: >"$WORK/held"
hold_idle "$BS_PORT" "$N" 3 >"$WORK/held" & H=$!
until [ -s "$WORK/held" ]; do sleep 0.1; done
wait $H
pkill -TERM -f "blueshift serve -p $WORK/policy.yaml" || true
wait $HT 2>/dev/null || true
REPORT=$(find "$WORK" -maxdepth 1 -name "heap*" -type f | head -1)
for _ in $(seq 100); do [ -s "$REPORT" ] && ! pgrep -f heaptrack_interpret >/dev/null && break; sleep 0.2; done
heaptrack_print -f "$REPORT" -F "$WORK/stacks.txt" --flamegraph-cost-type peak >/dev/null 2>&1
# Each allocation live at the peak, charged to the deepest frame of Pingora, tokio, h2 or
# blueshift on its stack (not the allocator's own frames), per connection.
python3 - "$WORK/stacks.txt" "$N" <<'PY'
import collections, re, sys
path, n = sys.argv[1], int(sys.argv[2])
ours = re.compile(r"pingora|blueshift|tokio|h2::|httparse|hashbrown|prometheus")
plumbing = re.compile(r"alloc::|raw_vec|RawVec|Vec\$LT|BytesMut.*reserve")
cost = collections.Counter()
total = 0
for line in open(path):
    stack, _, c = line.rstrip().rpartition(" ")
    if not stack:
        continue
    total += int(c)
    frames = stack.split(";")
    site = next((f for f in reversed(frames) if ours.search(f) and not plumbing.search(f)), frames[-1])
    site = re.sub(r"::h[0-9a-f]{16}", "", site)
    site = site.replace("$LT$", "<").replace("$GT$", ">").replace("$u20$", " ").replace("$u7b$", "{").replace("$u7d$", "}").replace("$C$", ",")
    cost[site[:150]] += int(c)
print(f"heap at the peak: {total / 2**20:.1f} MiB, {total / n / 1024:.1f} KiB per connection")
print(f"{'KiB/conn':>9}  where it was allocated")
for site, c in cost.most_common(12):
    print(f"{c / n / 1024:9.2f}  {site}")
PY
