{#
    How a replay event becomes Events API JSON: the event (event_json) and its batch's
    context with the user's blocked attributes (send_context). int_events__assembled
    builds them once, before the fix chain, for every event to send; replay_events builds
    them again only for the events a fix changed.
#}

{% macro event_data_columns() -%}
    {#- The members of an event's data object that have a column of their own (in
        stg_quarantine__events and the fix chain): event_data holds the rest, so that each
        is stored once, and replay_event_json writes the columns' values back. -#}
    {{ return(['event_id', 'event_name', 'custom_event_type', 'timestamp_unixtime_ms', 'custom_attributes']) }}
{%- endmacro %}

{% macro event_data_rest(data) -%}
    {#- An event's data object (a JSON object) without the members of event_data_columns(),
        the others as written, in their order. -#}
    {{ return(adapter.dispatch('event_data_rest', 'mparticle_backfill')(data)) }}
{%- endmacro %}

{% macro duckdb__event_data_rest(data) -%}
    json_merge_patch({{ data }}, '{
        {%- for name in event_data_columns() -%}
            "{{ name }}": null{{ ', ' if not loop.last }}
        {%- endfor -%}}')
{%- endmacro %}

{% macro spark__event_data_rest(data) -%}
    to_json(map_filter(
        from_json({{ data }}, 'map<string,variant>'),
        (k, v) -> k not in ('{{ event_data_columns() | join("', '") }}')
    ))
{%- endmacro %}

{% macro default__event_data_rest(data) -%}
    {{ unsupported_engine('event_data_rest') }}
{%- endmacro %}

{% macro replay_event_json(events) -%}
    {{ return(adapter.dispatch('replay_event_json', 'mparticle_backfill')(events)) }}
{%- endmacro %}

{% macro spark__replay_event_json(events) -%}
    {#- As on DuckDB: `data` is event_data without event_id, with the chain's columns set
        and null members left out; custom_attributes without its null members (DuckDB's
        merge patch also drops nulls nested deeper: docs/spark.md). -#}
    {%- set attributes = marked_custom_attributes(events ~ '.custom_attributes') -%}
    to_json(map(
        'event_type', cast({{ events }}.event_type as variant),
        'data', parse_json(to_json(map_concat(
            map_filter(
                from_json({{ events }}.event_data, 'map<string,variant>'),
                (k, v) -> k not in ('event_id', 'custom_attributes', 'event_name',
                    'custom_event_type', 'timestamp_unixtime_ms')
            ),
            map_filter(map(
                'event_name', cast({{ events }}.event_name as variant),
                'custom_event_type', cast({{ events }}.custom_event_type as variant),
                'timestamp_unixtime_ms', cast({{ events }}.timestamp_unixtime_ms as variant),
                'custom_attributes', case
                    when {{ json_kind(attributes) }} = 'OBJECT' then parse_json(to_json(map_filter(
                        from_json({{ attributes }}, 'map<string,variant>'), (k, v) -> not is_variant_null(v)
                    )))
                    else parse_json({{ attributes }})
                end
            ), (k, v) -> v is not null and not is_variant_null(v))
        )))
    ))
{%- endmacro %}

{% macro duckdb__replay_event_json(events) -%}
    json_object(
        'event_type', {{ events }}.event_type,
        'data', json_merge_patch(
            json_merge_patch({{ events }}.event_data, '{"event_id": null, "custom_attributes": null}'),
            json_object(
                'event_name', {{ events }}.event_name,
                'custom_event_type', {{ events }}.custom_event_type,
                'timestamp_unixtime_ms', {{ events }}.timestamp_unixtime_ms,
                'custom_attributes', {{ marked_custom_attributes(events ~ '.custom_attributes') }}
            )
        )
    )
{%- endmacro %}

{% macro default__replay_event_json(events) -%}
    {{ unsupported_engine('replay_event_json') }}
{%- endmacro %}

{% macro replay_send_context(events, contexts) -%}
    {{ return(adapter.dispatch('replay_send_context', 'mparticle_backfill')(events, contexts)) }}
{%- endmacro %}

{% macro spark__replay_send_context(events, contexts) -%}
    case
        when {{ events }}.user_attributes is null then {{ contexts }}.batch_context
        else {{ fix_json_set(contexts ~ '.batch_context', 'user_attributes', events ~ '.user_attributes') }}
    end
{%- endmacro %}

{% macro duckdb__replay_send_context(events, contexts) -%}
    case
        when {{ events }}.user_attributes is null then {{ contexts }}.batch_context
        else json_merge_patch(
            {{ contexts }}.batch_context, json_object('user_attributes', {{ events }}.user_attributes)
        )
    end
{%- endmacro %}

{% macro default__replay_send_context(events, contexts) -%}
    {{ unsupported_engine('replay_send_context') }}
{%- endmacro %}
