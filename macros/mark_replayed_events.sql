{% macro marked_custom_attributes(custom_attributes) -%}
    {#- `custom_attributes` (SQL for a JSON object or null) with `backfill_id` set to var
        mark_replayed_events when that var is set: downstream tools can tell replayed
        events apart. Unchanged when the var is null. -#}
    {%- set backfill_id = var('mark_replayed_events', none) -%}
    {%- if backfill_id is none -%}
        {{ custom_attributes }}
    {%- elif target.type == 'spark' -%}
        {{ fix_json_set('coalesce(' ~ custom_attributes ~ ", '{}')", 'backfill_id', 'to_json(cast(' ~ dbt.string_literal(backfill_id) ~ ' as variant))') }}
    {%- else -%}
        json_merge_patch(
            coalesce({{ custom_attributes }}, '{}'::json),
            json_object('backfill_id', {{ dbt.string_literal(backfill_id) }})
        )
    {%- endif -%}
{%- endmacro %}
