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
fi

if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
