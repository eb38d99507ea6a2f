{{ config(severity='warn') }}
-- Lines `loader ingest` could not read (raw.rejected_lines): their batches are in neither
-- the replay set nor blocked_events__outcomes. Fix or re-download those files, then run
-- `loader ingest` on them again.
select source_file, line_number, reason
from {{ source('quarantine', 'rejected_lines') }}
