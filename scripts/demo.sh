#!/usr/bin/env bash
# The demo backfill, end to end, in demo-output/ (your own warehouse and ledger are not
# touched): sample quarantine data -> ingest -> dbt build -> push to a local Events API
# emulator -> audit with SQL.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=demo-output
rm -rf "$OUT" && mkdir -p "$OUT"
export BACKFILL_DUCKDB="$OUT/backfill.duckdb" BACKFILL_LEDGER="$OUT/ledger.duckdb"
# The emulator checks credentials like mParticle; these are local demo values.
export MPARTICLE_API_KEY=demo-key MPARTICLE_API_SECRET="demo-secret-$RANDOM$RANDOM"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1. A sample Quarantine Output folder: date folders, gzip under .txt, verification files"
loader sample "$OUT/quarantine" --events 5000

step "2. loader ingest: one raw row per NDJSON line, bad lines kept in raw.rejected_lines"
loader ingest "$OUT/quarantine"

step "3. dbt build: unnest the block metadata, apply the demo's fixes, build and test replay_events
   (the demo's vars, examples/demo_vars.yml: its three fixes in models/demo/fixes/, and the data
   plan fixed in shop_plan v4, so the replay names v4 instead of the v3 that blocked it)"
dbt build --quiet --target-path "$OUT/target" --log-path "$OUT/logs" \
    --vars "$(cat examples/demo_vars.yml)"
echo "dbt build passed: models, data tests and unit tests"
python scripts/replay_summary.py "$BACKFILL_DUCKDB"

step "3b. Before sending: identity risk per class, and the replay set checked against plan v4"
loader sql "select identity_class, identity_risk, users, events_to_replay from replay_summary__risk order by sort_order"
loader plan-check examples/data_plan_shop_plan_v4.json || echo "(plan-check: some events would be blocked again)"

step "4. Start the local Events API emulator: checks every batch as mParticle would; its first
   two answers are a 503 and a 429, to show the retries"
loader emulate --port 0 --db "$OUT/emulator.duckdb" --url-file "$OUT/emulator.url" \
    --latency-ms 20 --script 503,429:1 >"$OUT/emulator.log" 2>&1 &
EMULATOR_PID=$!
trap 'kill "$EMULATOR_PID" 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -s "$OUT/emulator.url" ] && break; sleep 0.1; done
ENDPOINT=$(cat "$OUT/emulator.url")
echo "listening on $ENDPOINT"

step "5. loader push: pack per user, send with retries and rate limit, record in the ledger"
loader push --endpoint "$ENDPOINT"

step "6. Push it again: the ledger makes a re-run safe (nothing is sent twice)"
loader push --endpoint "$ENDPOINT"

step "7. Stop the emulator"
kill -TERM "$EMULATOR_PID" && wait "$EMULATOR_PID" || true
trap - EXIT
tail -n 1 "$OUT/emulator.log"

step "8. Audit with SQL: the replay set joined with the ledger and what the emulator received"
loader sql --attach emulator="$OUT/emulator.duckdb" "
select
    r.event_name,
    count(*) as replay_events,
    count(a.replay_key) as acknowledged,
    count(e.event_json) filter (where e.event_json = r.event_json) as received_identical,
from replay_events r
left join ledger.acknowledged_events a using (replay_key)
left join ledger.batch_events b on b.replay_key = r.replay_key
    and b.source_request_id = a.source_request_id
left join emulator.received_events e
    on e.source_request_id = b.source_request_id and e.event_index = b.position
group by all
order by replay_events desc"

step "9. loader report: one self-contained HTML page for whoever signs off the backfill"
loader report --out "$OUT/report.html"

cat <<DONE

Done. Everything is in $OUT/: the warehouse (backfill.duckdb), the send ledger
(ledger.duckdb) and what the emulator received (emulator.duckdb).
Explore:  BACKFILL_DUCKDB=$OUT/backfill.duckdb BACKFILL_LEDGER=$OUT/ledger.duckdb loader sql analyses/sent_in_run.sql
DONE
