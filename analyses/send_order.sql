-- The deadline-first send order (model replay_send_order): each batch group (a user's
-- events of one batch-level context) with its position, the user's nearest age deadline
-- still ahead, and when it is expected to have been sent at var
-- expected_send_rate_batches_per_s; then, per integration with a known age limit, the
-- events that pass it before their expected send.
--
--   loader sql analyses/send_order.sql

select
    send_position,
    user_key,
    context_key,
    events,
    make_timestamp(user_deadline_ms * 1000) as user_deadline,
    expected_send_at
from replay_send_order
order by send_position;

select
    integration,
    count(*) as events_too_old_at_send,
    min(expected_send_at) as first_expected_send,
    max(expected_send_at) as last_expected_send
from replay_integration_outcomes
where verdict = 'too_old_at_send'
group by integration
order by min(integration_position);
