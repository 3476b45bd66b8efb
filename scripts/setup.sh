#!/usr/bin/env bash
# Everything a fresh machine needs: i2pd (the router the demo and tests start privately, loopback only)
# and the Python package with its test extras. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
need_apt=()
command -v i2pd >/dev/null 2>&1 || need_apt+=(i2pd)
command -v strace >/dev/null 2>&1 || need_apt+=(strace)
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -q
  apt-get install -y -q "${need_apt[@]}"
fi
# The Debian package enables i2pd as a system service with its default (clearnet) configuration.
# We never use it: stop it if the package started it, so nothing reaches public routers.
if command -v systemctl >/dev/null 2>&1; then systemctl disable --now i2pd >/dev/null 2>&1 || true; fi
python3 -m pip install -q -e '.[test]'
