#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo fuzz, libFuzzer) of everything blueshift parses from untrusted
# input, one target after another:
#
#   benches/fuzz.sh [minutes-per-target] [target...]     (default 1 minute, every target; 0.5 works)
#
# Targets (fuzz/fuzz_targets/): policy (the policy loader), headers (framing rules, affinity
# cookie, forwarding and override headers, session key), answers (the quality gates' JSON and
# event-stream extraction, compressed or not, in any chunks), admin (the admin API behind
# Pingora's HTTP/1 server) and proxy (the proxy's request path behind it, no backend healthy).
# Each starts from fuzz/seeds/<target> and keeps what it learns in fuzz/corpus/<target>; a crash
# or a panic leaves its input in fuzz/artifacts/<target>/ (replay: cargo fuzz run <target> FILE),
# and the script exits 1 after running the rest. Runs on stable Rust (no sanitizer).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
MINUTES=${1:-1}
SECS=$(awk -v m="$MINUTES" 'BEGIN { s = int(m * 60); print (s < 1 ? 1 : s) }')
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(policy headers answers admin proxy)
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
command -v g++ >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq g++ >/dev/null)

cd "$ROOT/fuzz"
for t in "${TARGETS[@]}"; do cargo fuzz build -s none --release "$t" >/dev/null; done
failed=()
printf '%-8s %10s %8s %8s %10s  %s\n' target runs exec/s cov corpus result
for t in "${TARGETS[@]}"; do
  mkdir -p "corpus/$t"
  log=$(mktemp)
  if cargo fuzz run -s none --release "$t" "corpus/$t" "seeds/$t" -- \
      -max_total_time=$SECS -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 \
      >"$log" 2>&1; then
    result=ok
  else
    result="FAILED: $(ls -t "artifacts/$t" 2>/dev/null | head -1)"
    failed+=("$t")
    # A crash says why; anything else (a build that fails) shows its last lines.
    grep -m3 -E "panicked|ERROR|SUMMARY" "$log" >&2 || tail -5 "$log" >&2
  fi
  runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo "?")
  speed=$(grep -oE 'stat::average_exec_per_sec: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo "?")
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+' || echo "?")
  corpus=$(find "corpus/$t" -type f | wc -l)
  printf '%-8s %10s %8s %8s %10s  %s\n' "$t" "$runs" "$speed" "$cov" "$corpus" "$result"
  rm -f "$log"
done
[ ${#failed[@]} -eq 0 ] || { echo "crashes in: ${failed[*]} (inputs under fuzz/artifacts/)" >&2; exit 1; }
