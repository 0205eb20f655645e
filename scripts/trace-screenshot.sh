#!/bin/sh
# Turns an irqlab Chrome trace into a PNG: one queue_work arrow and the
# slices around it, drawn by the Performance panel of Chromium's bundled
# DevTools in headless Chromium.
#
# Usage: scripts/trace-screenshot.sh TRACE.json OUT.png [WORK]
#
# Needs Debian's chromium (apt-get install chromium), node and npm.
# playwright-core, which drives the browser, is installed once into
# $TRACE_SCREENSHOT_CACHE (default: ~/.cache/irqlab-trace-screenshot).
set -eu

if [ "$#" -lt 2 ] || [ "$#" -gt 3 ]; then
    echo "usage: $0 TRACE.json OUT.png [WORK]" >&2
    exit 2
fi
for tool in node npm; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "error: $tool not found; install Node.js" >&2
        exit 1
    fi
done
chromium=${CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$chromium" ]; then
    echo "error: $chromium not found; run apt-get install chromium or set CHROMIUM" >&2
    exit 1
fi

cache=${TRACE_SCREENSHOT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/irqlab-trace-screenshot}
if [ ! -d "$cache/node_modules/playwright-core" ]; then
    mkdir -p "$cache"
    npm install --prefix "$cache" --no-save --no-audit --no-fund playwright-core >&2
fi

script_dir=$(cd "$(dirname "$0")" && pwd)
CHROMIUM=$chromium NODE_PATH="$cache/node_modules" exec node "$script_dir/trace-screenshot.js" "$@"
