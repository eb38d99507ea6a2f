{#
    How a replay event becomes Events API JSON: the event (event_json) and its batch's
    context with the user's blocked attributes (send_context). int_events__assembled
    builds them once, before the fix chain, for every event to send; replay_events builds
    them again only for the events a fix changed.
#}

{% macro replay_event_json(events) -%}
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

{% macro replay_send_context(events, contexts) -%}
    case
        when {{ events }}.user_attributes is null then {{ contexts }}.batch_context
        else json_merge_patch(
            {{ contexts }}.batch_context, json_object('user_attributes', {{ events }}.user_attributes)
        )
    end
{%- endmacro %}
