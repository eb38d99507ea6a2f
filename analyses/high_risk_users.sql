-- Users mParticle may not recognise: no MPID and no login identity. Their replay may
-- create new profiles (extra MTUs). Exclude them with dbt var exclude_high_risk_users.
--
--   loader sql analyses/high_risk_users.sql

select
    user_key,
    identity_class,
    device_id_types,
    events_to_replay,
    events_excluded_for_risk,
    quarantine_batches,
from replay_user_risk
where identity_risk = 'high'
order by events_to_replay desc, user_key
