{#
    Deadline-first send order and its expected send times, in one place: model
    replay_send_order orders the replay set's batches with them, model
    replay_integration_outcomes takes each event's expected send time from it, and
    `loader push` can read replay_send_order (or call these) for its order and ETA.
#}

{% macro day_ms() -%} cast(86400000 as bigint) {%- endmacro %}

{% macro send_deadline_ms(timestamp_ms_expr, max_age_days_expr) -%}
    {#- The last moment an event at `timestamp_ms_expr` is still within a limit of
        `max_age_days_expr` days (an event exactly that old is within it). -#}
    ({{ timestamp_ms_expr }} + cast({{ max_age_days_expr }} as bigint) * {{ day_ms() }})
{%- endmacro %}

{% macro expected_send_rate() -%}
    {#- Var expected_send_rate_batches_per_s as a SQL number (checked by project_vars). -#}
    cast({{ var('expected_send_rate_batches_per_s', 250) }} as double)
{%- endmacro %}

{% macro expected_send_at_ms(send_position_expr, start_ms_expr=none) -%}
    {#- When the batch at 1-based `send_position_expr` of the send order has gone out, sending
        from `start_ms_expr` (default: the build's reference time) at var
        expected_send_rate_batches_per_s: start + ceil(position * 1000 / rate) ms. Only the
        offset passes through a double; the Unix ms stay a bigint. -#}
    ({{ start_ms_expr if start_ms_expr is not none else reference_time_ms() }}
        + cast(ceil({{ send_position_expr }} * 1000.0 / {{ expected_send_rate() }}) as bigint))
{%- endmacro %}

{% macro duration_text(ms_expr) -%}
    {#- A duration in Unix ms as words: '12 s', '5 min', '3.5 hours' or '2.0 days'. -#}
    case
        when ({{ ms_expr }}) < 60000
            then concat(cast(cast(ceil(({{ ms_expr }}) / 1000.0) as bigint) as string), ' s')
        when ({{ ms_expr }}) < 3600000
            then concat(cast(cast(ceil(({{ ms_expr }}) / 60000.0) as bigint) as string), ' min')
        when ({{ ms_expr }}) < 86400000
            then concat(cast(round(({{ ms_expr }}) / 3600000.0, 1) as string), ' hours')
        else concat(cast(round(({{ ms_expr }}) / 86400000.0, 1) as string), ' days')
    end
{%- endmacro %}
