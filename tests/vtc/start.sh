#!/usr/bin/env bash
# Starts blueshift for a VTC script: one color whose only backend is the script's fake origin
# (its first connection is blueshift's one health check: every script's origin answers it
# first), listening where the script's client connects.
#
#   start.sh ORIGIN_ADDR ORIGIN_PORT [POLICY_LINES]
#   env: BLUESHIFT (the binary), PROXY_PORT, ADMIN_PORT (set by tests/vtc.rs)
set -eu
dir=$(mktemp -d)
cat >"$dir/policy.yaml" <<POLICY
listen: 127.0.0.1:$PROXY_PORT
admin: 127.0.0.1:$ADMIN_PORT
colors:
  blue:
    backends: [{addr: "$1:$2"}]
health: {interval: 1h, timeout: 2s, healthy_after: 1}
timeouts: {connect: 1s, read: 2s, client_header: 3s, client_body: 3s}
${3:-}
POLICY
# Stop at once on varnishtest's SIGTERM at the end of a script (no grace period).
printf 'version: 1\ngrace_period_seconds: 0\ngraceful_shutdown_timeout_seconds: 0\n' >"$dir/pingora.yaml"
exec "$BLUESHIFT" serve -p "$dir/policy.yaml" --pingora-conf "$dir/pingora.yaml"
