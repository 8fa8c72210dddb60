#!/bin/sh
# End to end over a scale world: generate it with its HTML, serve it on loopback, then `m5data run`
# (crawl, download, extract, align, annotate, splits, export, report) and print the flow's stage
# table and peak RSS. Usage: benchmarks/e2e_scale.sh [PRODUCTS=30000] [WORK=/tmp/m5data-e2e-scale] [PORT=8732]
# docs/scale.md quotes its figures ("End to end").
set -eu
N=${1:-30000}; WORK=${2:-/tmp/m5data-e2e-scale}; PORT=${3:-8732}
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
W=$WORK/world-$N; S=$WORK/store-$N
mkdir -p "$WORK"; rm -rf "$S" "$WORK/report-$N"
/usr/bin/time -f "generate: %e s, peak %M KB" "$BIN/m5data" demo-shop generate --profile scale --products "$N" \
    --out "$W" --site --workers 2
"$BIN/m5data" demo-shop serve "$W" --port "$PORT" > "$WORK/serve-$N.log" 2>&1 &
SERVE=$!
trap 'kill $SERVE 2>/dev/null' EXIT
sleep 3
/usr/bin/time -f "run: %e s, peak %M KB" "$BIN/m5data" --store "$S" --set download.allow_private=true \
    --set crawl.allow_private=true --set report.out="$WORK/report-$N" \
    run --start-url "http://127.0.0.1:$PORT/" --mapping "$W/truth/level1_mapping.toml" --no-progress
