#!/usr/bin/env bash
# The demo backfill, end to end, in demo-output/ (your own warehouse is not touched).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=demo-output
rm -rf "$OUT" && mkdir -p "$OUT"
export BACKFILL_DUCKDB="$OUT/backfill.duckdb" BACKFILL_LEDGER="$OUT/ledger.duckdb"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1. A sample Quarantine Output folder (gzip under .txt, date folders, verification files)"
loader sample "$OUT/quarantine" --events 5000

step "2. loader ingest: one raw row per NDJSON line"
loader ingest "$OUT/quarantine"

step "3. dbt build: unnest the block metadata, apply the fixes, build and test replay_events"
dbt build --quiet --warn-error-options '{"silence": ["NoNodesForSelectionCriteria"]}'
echo "dbt build passed (models, data tests, unit tests)"

step "4. What would be sent"
python scripts/replay_summary.py "$BACKFILL_DUCKDB"
