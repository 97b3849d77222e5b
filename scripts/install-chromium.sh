#!/usr/bin/env bash
# Install Debian's Chromium for the dashboard's browser tests (Playwright drives /usr/bin/chromium and
# never downloads a browser of its own). Needs root; does nothing when Chromium is already there.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
  exit 0
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
