#!/usr/bin/env bash
# The npm packages the tracker tests and benchmark use as partners (the reference bittorrent-tracker
# server and client, ws), pinned by tests/node/package-lock.json. Safe to run again: it does nothing
# when the installed tree matches the lock file, so it also works offline once installed.
# --ignore-scripts: a dependency's install step downloads a binary from outside the registry.
set -euo pipefail
cd "$(dirname "$0")/../tests/node"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q nodejs npm
fi
stamp=node_modules/.i2ptorrent-lock.sha256
want=$(sha256sum package-lock.json package.json webrtc-polyfill-shim/* | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -f node_modules/bittorrent-tracker/package.json ]; then
  exit 0
fi
npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
echo "$want" > "$stamp"
