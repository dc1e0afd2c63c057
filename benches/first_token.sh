#!/usr/bin/env bash
# Where a token stream's first token spends the time a proxy adds: one client reads 2-event
# streams back to back (examples/sse_load) from the model server directly, through blueshift,
# through nginx tuned for model traffic and through bare Pingora, in alternating rounds. Per
# stream it times the answer's head and the first event from the request's write, the gap
# between them (0 when both arrive in one read), and the first event's time on each side of the
# `: sent=` stamp the model server writes into it: the request's way to the model, and the way
# back. The table gives medians over the rounds of each p50, and what each proxy adds to direct.
#
#   benches/first_token.sh [SECONDS] [ROUNDS]      (default 3 s, 5 rounds; ~1 minute)
source "$(dirname "$0")/common.sh"
SECS=${1:-3}
ROUNDS=${2:-5}
need_tools nginx curl python3
(cd "$ROOT" && cargo build --release --bin blueshift --example model --example sse_load --example bare_pingora)
BS_P=18580 BS_TLS_P=18583 NGINX_P=18581 NGINX_TLS_P=18584 BARE_P=18582 BARE_TLS_P=18585
start_models
BS_ADMIN=18586 models_policy "$BS_P" "$BS_TLS_P" >"$WORK/policy.yaml"
RUST_LOG=error "$ROOT/target/release/blueshift" serve -p "$WORK/policy.yaml" --pingora-conf "$BS_PINGORA_CONF" & PIDS+=($!)
start_models_nginx nginx-tuned "$NGINX_P" "$NGINX_TLS_P" "$TUNED_UPSTREAM" "$TUNED_LOCATION"
BARE_CLIENT_LIMITS=1 RUST_LOG=error "$ROOT/target/release/examples/bare_pingora" "127.0.0.1:$BARE_P" \
  "127.0.0.1:$MODEL_PORT" "127.0.0.1:$BARE_TLS_P" "$CERT" "$KEY" & PIDS+=($!)
for p in "$BS_P" "$BARE_P"; do wait_port "$p"; done
# The first stream through each proxy opens its upstream connection: not part of what is timed.
for p in "$MODEL_PORT" "$BS_P" "$NGINX_P" "$BARE_P"; do
  curl -sf -o /dev/null "http://127.0.0.1:$p/stream?events=2&gap=1"
done

declare -A PORT=([direct]=$MODEL_PORT [blueshift]=$BS_P [nginx-tuned]=$NGINX_P [bare-pingora]=$BARE_P)
: >"$WORK/results"
for round in $(seq "$ROUNDS"); do
  for t in direct blueshift nginx-tuned bare-pingora; do
    out=$("$ROOT/target/release/examples/sse_load" "127.0.0.1:${PORT[$t]}" "/stream?events=2&gap=1&stamp=1" 1 "$SECS")
    echo "$t $out" >>"$WORK/results"
    echo "round $round $t: $out" >&2
  done
done

echo
echo "## The first token, one client, 2-event streams, median of $ROUNDS rounds of ${SECS}s ($(nproc) cores, $(date -u +%F))"
echo
python3 - "$WORK/results" <<'PY'
import json, statistics as st, sys
runs = {}
for line in open(sys.argv[1]):
    t, js = line.split(" ", 1)
    runs.setdefault(t, []).append(json.loads(js))
med = {t: {k: st.median(r[k] for r in rs) for k in rs[0]} for t, rs in runs.items()}
errors = {t: sum(r["errors"] for r in rs) for t, rs in runs.items()}
d = med["direct"]
print("| target | streams | to the model (added) | back to the client (added) | head (added) | first event (added) | head to first event p50 / p99 | errors |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for t, m in med.items():
    added = lambda k: "" if t == "direct" else f" ({m[k] - d[k]:+.0f})"
    print(f"| {t} | {m['streams']:,.0f} | {m['to_model_p50_us']:.0f} µs{added('to_model_p50_us')} | "
          f"{m['from_model_p50_us']:.0f} µs{added('from_model_p50_us')} | "
          f"{m['head_p50_us']:.0f} µs{added('head_p50_us')} | "
          f"{m['ttft_p50_us']:.0f} µs{added('ttft_p50_us')} | "
          f"{m['head_to_first_p50_us']:.0f} / {m['head_to_first_p99_us']:.0f} µs | {errors[t]} |")
PY
