{% macro destination_event_name(session_events=false, commerce_suffix='') -%}
    {#- The name a direct destination's mapping gives an event (columns event_type,
        event_name, data): a custom event's own name; 'Viewed <screen_name>' for a screen
        view; 'eCommerce - <action>' for a commerce event (its product action, else its
        promotion action, else 'impression') then `commerce_suffix`; with
        `session_events`, session_start and session_end as themselves. Null for any other
        event type. Plain SQL on every engine (json_text dispatches). -#}
    case event_type
            when 'custom_event' then event_name
            when 'screen_view'
                then 'Viewed ' || coalesce({{ json_text('data', '$.screen_name') }}, event_name)
            {%- if session_events %}
            when 'session_start' then 'session_start'
            when 'session_end' then 'session_end'
            {%- endif %}
            when 'commerce_event' then 'eCommerce - ' || coalesce(
                {{ json_text('data', '$.product_action.action') }},
                {{ json_text('data', '$.promotion_action.action') }},
                'impression'
            ){{ " || '" ~ commerce_suffix ~ "'" if commerce_suffix }}
        end
{%- endmacro %}
