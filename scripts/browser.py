"""The browser the dashboard tests and the screenshot script drive: Debian's Chromium, never a downloaded one."""

import os
from pathlib import Path

CHROMIUM = Path(os.environ.get("GRPO_CHROMIUM", "/usr/bin/chromium"))
# Headless and quiet: no GPU, no first-run UI, and no background traffic (the machine may have no internet).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
