#!/usr/bin/env bash
# The browser-side partners of the bridge tests and benchmark: Debian's Chromium and the stock npm
# webtorrent bundle (dist/webtorrent.min.js), pinned by tests/browser/package-lock.json into
# tests/browser/node_modules. Safe to run again: it does nothing when everything is in place.
# --ignore-scripts: a webtorrent dependency's install step calls out beyond the registry.
set -euo pipefail
cd "$(dirname "$0")/../tests/browser"
export DEBIAN_FRONTEND=noninteractive
need_apt=()
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
{ command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; } || need_apt+=(nodejs npm)
command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${need_apt[@]}"
fi
stamp=node_modules/.i2ptorrent-lock.sha256
if [ -f package-lock.json ]; then
  want=$(sha256sum package-lock.json package.json | sha256sum | cut -d' ' -f1)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
     && [ -f node_modules/webtorrent/dist/webtorrent.min.js ]; then
    exit 0
  fi
  npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
else
  npm install --ignore-scripts --no-audit --no-fund --loglevel=error
fi
want=$(sha256sum package-lock.json package.json | sha256sum | cut -d' ' -f1)
echo "$want" > "$stamp"
