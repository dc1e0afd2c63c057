#!/usr/bin/env bash
# Waits (5 s at most) until the blueshift of start.sh has checked its origin and its proxy
# listener accepts (`/healthz` answers 503 until it does).
for _ in $(seq 100); do
  if curl -sf "http://127.0.0.1:$ADMIN_PORT/healthz" >/dev/null &&
    curl -sf "http://127.0.0.1:$ADMIN_PORT/status" | grep -q '"health": "healthy"'; then
    exit 0
  fi
  sleep 0.05
done
echo "blueshift did not come up" >&2
exit 1
