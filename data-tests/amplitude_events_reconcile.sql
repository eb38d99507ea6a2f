-- Every replay event is either sent to Amplitude or skipped with a reason, never both.
select replay_key, 'neither sent nor skipped' as problem
from {{ ref('replay_events') }}
where replay_key not in (select replay_key from {{ ref('amplitude_events') }})
    and replay_key not in (select replay_key from {{ ref('amplitude_events__skipped') }})
union all
select replay_key, 'both sent and skipped'
from {{ ref('amplitude_events') }}
where replay_key in (select replay_key from {{ ref('amplitude_events__skipped') }})
