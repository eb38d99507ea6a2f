-- Replay events that would trigger messages in a connected tool (a Braze campaign or
-- Canvas, a Customer.io campaign): each replay event matching a row of seed trigger_events,
-- once per integration. A row matches on event type and event name (a screen view's
-- screen_name); a row without a name matches every event of its type. `loader push`
-- refuses to send these without --allow-triggers; a fix can skip them (skip_events).

with triggers as (
    select * from {{ ref('trigger_events') }}
),

replay as (
    select
        replay_key,
        user_key,
        event_type,
        coalesce(event_name, {{ json_text('event_json', '$.data.screen_name') }}) as event_name
    from {{ ref('replay_events') }}
)

select distinct
    replay.replay_key,
    replay.user_key,
    triggers.integration,
    replay.event_type,
    replay.event_name
from replay
inner join triggers
    on replay.event_type = triggers.event_type
    and (triggers.event_name is null or replay.event_name = triggers.event_name)
