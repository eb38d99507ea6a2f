-- Which fix changed which row: each fix's output compared with its input, on replay_key.

{% set fixes = var('fixes', []) or [] %}

{% if fixes | length == 0 %}
select
    cast(null as varchar) as replay_key,
    cast(null as varchar) as fix_name,
    cast(null as integer) as fix_position,
where false
{% else %}
{% for fix in fixes %}
{% set input = fix_chain_start() if loop.first else ref(fixes[loop.index0 - 1]) %}
select
    fixed.replay_key,
    '{{ fix }}' as fix_name,
    {{ loop.index }} as fix_position,
from {{ ref(fix) }} as fixed
inner join {{ input }} as original on fixed.replay_key = original.replay_key
where {{ fix_content_hash('fixed') }} <> {{ fix_content_hash('original') }}
{% if not loop.last %}union all{% endif %}
{% endfor %}
{% endif %}
