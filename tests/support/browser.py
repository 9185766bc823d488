"""How every browser test starts Debian's Chromium (never a downloaded browser)."""

CHROMIUM = "/usr/bin/chromium"

# Without the background-networking flags Chromium keeps trying hosts this
# closed network refuses; --no-sandbox because the tests run as root.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
