#!/usr/bin/env bash
# Installs what building and testing blueshift needs beyond a Rust toolchain.
# Idempotent: does nothing when everything is already there.
set -euo pipefail

need=()
command -v cmake >/dev/null 2>&1 || need+=(cmake)        # Pingora builds zlib-ng with it
command -v cc >/dev/null 2>&1 || need+=(build-essential)
if [ "${1:-}" = "--test" ]; then
  command -v promtool >/dev/null 2>&1 || need+=(prometheus)          # promtool checks metrics and rules
  command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)      # verifies deploy/systemd
  command -v curl >/dev/null 2>&1 || need+=(curl)                    # TLS and HTTP/2 clients
  command -v nghttp >/dev/null 2>&1 || need+=(nghttp2-client)        # h2c multiplexing client
  command -v python3 >/dev/null 2>&1 || need+=(python3 python3-pip)  # gRPC and WebSocket peers
  command -v varnishtest >/dev/null 2>&1 || need+=(varnish)          # the VTC raw-bytes suite
  command -v chromium >/dev/null 2>&1 || need+=(chromium fonts-dejavu-core)  # the rollout page's test
fi

if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# The tests' gRPC model servers and clients (grpcio), WebSocket peers and OpenAI-style client
# (openai) run in Python.
if [ "${1:-}" = "--test" ] && ! python3 -c 'import grpc, grpc_health, websockets, openai' 2>/dev/null; then
  echo "setup: installing grpcio grpcio-health-checking websockets openai (pip)"
  python3 -m pip install --quiet --disable-pip-version-check grpcio grpcio-health-checking websockets openai \
    || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages \
         grpcio grpcio-health-checking websockets openai
fi
