-- Events and users per identity class, every class listed (zero when absent): the numbers
-- to read before sending. High-risk classes may create new profiles (extra MTUs).

with classes as (
    select * from (values
        (1, 'mpid', 'low',
            'The batch names the MPID - events land on that profile.'),
        (2, 'login_identity', 'low',
            'No MPID, but a login identity (var login_identity_types) - mParticle finds the '
            || 'known profile, or creates the right one.'),
        (3, 'device_ids_only', 'high',
            'Only device ids or non-login identities - mParticle may create a new anonymous '
            || 'profile (an extra MTU) or attach the events to whoever last used the device.'),
        (4, 'no_identity', 'high',
            'Nothing identifies the user - the events cannot be attributed to a profile.')
    ) as t(sort_order, identity_class, identity_risk, meaning)
),

users as (
    select * from {{ ref('replay_user_risk') }}
),

summary as (
    select
        classes.sort_order,
        classes.identity_class,
        classes.identity_risk,
        count(users.user_key) as users,
        count(users.user_key) filter (where users.events_to_replay > 0) as users_to_replay,
        coalesce(sum(users.events_affected), 0)::bigint as events_affected,
        coalesce(sum(users.events_to_replay), 0)::bigint as events_to_replay,
        coalesce(sum(users.events_excluded_for_risk), 0)::bigint as events_excluded_for_risk,
        classes.meaning
    from classes
    left join users on classes.identity_class = users.identity_class
    group by all
)

select * from summary
