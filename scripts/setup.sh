#!/usr/bin/env bash
# Everything a fresh machine needs. Safe to run again (it skips what is already there).
#   bash scripts/setup.sh          i2pd and the Python package: enough for the demo and real use
#   bash scripts/setup.sh --test   also the test partners: Chromium, node + the npm packages, strace, redis-server
# The Python package goes into its own virtual environment, .venv in this clone, with nothing from the
# machine's site-packages: Debian's python3 refuses pip installs (PEP 668), and a clean environment is
# what proves pyproject.toml declares every import. Run things with .venv/bin/python3 (or activate it).
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
tests=0
[ "${1:-}" = "--test" ] && tests=1

venv=.venv

need_apt=()
command -v i2pd >/dev/null 2>&1 || need_apt+=(i2pd)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need_apt+=(python3-venv)
if [ $tests = 1 ]; then
  command -v strace >/dev/null 2>&1 || need_apt+=(strace)
  command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
  { command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; } || need_apt+=(nodejs npm)
  command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)
  command -v nsenter >/dev/null 2>&1 || need_apt+=(util-linux)
  command -v transmission-remote >/dev/null 2>&1 || need_apt+=(transmission-cli)  # a real RPC client
  command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${need_apt[@]}"
fi
# The Debian package may enable i2pd as a system service with its default (clearnet) configuration.
# i2ptorrent never uses that: stop it if the package started it, so nothing reaches public routers.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet i2pd 2>/dev/null; then
  systemctl disable --now i2pd >/dev/null 2>&1 || true
fi

[ -x "$venv/bin/python3" ] || python3 -m venv "$venv"
if [ $tests = 1 ]; then
  "$venv/bin/python3" -m pip install -q -e '.[test]'
  bash scripts/setup-node.sh
  bash scripts/setup-browser.sh
else
  "$venv/bin/python3" -m pip install -q -e .
fi
