#!/bin/sh
# Runs the built-in demo and saves a picture of its text report, as a
# terminal shows it, with headless Chromium.
#
# Usage: scripts/report-screenshot.sh OUT.png [irqlab options...]
#
# Needs Debian's chromium (apt-get install chromium) or CHROMIUM set.
set -eu

if [ "$#" -lt 1 ]; then
    echo "usage: $0 OUT.png [irqlab options...]" >&2
    exit 2
fi
out=$1
shift
chromium=${CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$chromium" ]; then
    echo "error: $chromium not found; run apt-get install chromium or set CHROMIUM" >&2
    exit 1
fi

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cargo run --quiet --release -- "$@" >"$scratch/report.txt" 2>/dev/null
lines=$(wc -l <"$scratch/report.txt")

# Escape the three characters HTML gives meaning to, and show the text in
# a terminal's colours and font.
{
    printf '%s\n' '<!doctype html><meta charset="utf-8"><style>'
    printf '%s\n' 'body{margin:0;background:#1e1e1e}'
    printf '%s\n' 'pre{margin:0;padding:16px;color:#d4d4d4;font:13px/1.35 "DejaVu Sans Mono",monospace}'
    printf '%s\n' '</style><pre>'
    sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e 's/>/\&gt;/g' "$scratch/report.txt"
    printf '%s\n' '</pre>'
} >"$scratch/report.html"

height=$((lines * 18 + 40))
"$chromium" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$scratch/profile" --hide-scrollbars \
    --window-size=1180,"$height" --screenshot="$out" "file://$scratch/report.html" >/dev/null 2>&1
echo "wrote $out ($lines lines of report)"
