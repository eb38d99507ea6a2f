{#
    The project's vars, checked once at the start of every dbt build, run or test
    (on-run-start in dbt_project.yml): a mistyped value stops the build with a message naming
    the var, before any model reads it; a var name close to one of these is reported, since
    dbt would ignore it.
#}

{% macro project_var_kinds() -%}
    {#- Every var of dbt_project.yml, with the kind of value it takes; a direct destination's
        own vars are declared by its models (config meta project_vars, in
        models/destinations/<name>/) and checked when it is built. -#}
    {% set project_var_kinds = {
        'replay_attribute_only_events': 'boolean',
        'data_plan_policy': 'data_plan_policy',
        'data_plan_override': 'data_plan_override',
        'max_event_age_days': 'days',
        'allow_events_older_than_max_age': 'boolean',
        'warn_event_age_days': 'days',
        'replay_reference_time_ms': 'unix_ms_or_null',
        'login_identity_types': 'identity_types',
        'exclude_high_risk_users': 'boolean',
        'replay_blocked_user_attributes': 'boolean',
        'replay_blocked_identities': 'boolean',
        'fixes': 'fix_names',
        'mark_replayed_events': 'backfill_id_or_null',
        'integrations': 'integration_names',
        'expected_send_rate_batches_per_s': 'batches_per_s',
        'context_fixes': 'fix_names',
        'dev_sample_users_pct': 'percent_or_null',
        'direct_destinations': 'destination_names',
        'quarantine_path': 'text_or_null',
        'replay_set_path': 'text_or_null',
    } %}
    {{ return(project_var_kinds) }}
{%- endmacro %}

{% macro var_is_whole_number(value, low, high) -%}
    {#- An integer (or a text of ASCII digits) from `low` to `high`. -#}
    {%- if value is string and value.isascii() and value.isdigit() -%}
        {%- set value = value | int -%}
    {%- endif -%}
    {{ return(value is integer and low <= value <= high) }}
{%- endmacro %}

{% macro var_is_percent(value) -%}
    {#- A number (or a text of one) greater than 0 and at most 100; not true or false. -#}
    {%- if value is string and modules.re.fullmatch('[0-9]+([.][0-9]+)?', value) -%}
        {%- set value = value | float -%}
    {%- endif -%}
    {{ return(value is number and value is not sameas true and value is not sameas false
        and 0 < value <= 100) }}
{%- endmacro %}

{% macro var_is_rate(value) -%}
    {#- A number (or a text of one) greater than 0 and at most 100000; not true or false. -#}
    {%- if value is string and modules.re.fullmatch('[0-9]+([.][0-9]+)?', value) -%}
        {%- set value = value | float -%}
    {%- endif -%}
    {{ return(value is number and value is not sameas true and value is not sameas false
        and 0 < value <= 100000) }}
{%- endmacro %}

{% macro var_is_name_list(value) -%}
    {{ return(value is iterable and value is not string and value is not mapping
        and (value | reject('string') | list | length) == 0
        and (value | select('equalto', '') | list | length) == 0) }}
{%- endmacro %}

{% macro var_is_lowercase_name_list(value) -%}
    {#- A list of names of lowercase letters, digits and _ (1 to 64 characters). -#}
    {%- if not var_is_name_list(value) -%} {{ return(false) }} {%- endif -%}
    {%- for item in value if not modules.re.fullmatch('[a-z0-9_]{1,64}', item) -%}
        {{ return(false) }}
    {%- endfor -%}
    {{ return(true) }}
{%- endmacro %}

{% macro var_problem(name, value, kind) -%}
    {#- Why `value` does not fit var `name`, or none. -#}
    {%- set shown = "'" ~ value ~ "'" -%}
    {%- if kind == 'boolean' and not (value is sameas true or value is sameas false) -%}
        {{ return('var ' ~ name ~ ' must be true or false, not ' ~ shown) }}
    {%- elif kind == 'days' and not var_is_whole_number(value, 0, 100000) -%}
        {{ return('var ' ~ name ~ ' must be a whole number of days from 0 to 100000, not ' ~ shown) }}
    {%- elif kind == 'unix_ms_or_null' and value is not none
            and not var_is_whole_number(value, 0, 253402300799999) -%}
        {{ return('var ' ~ name ~ ' must be null (now) or a Unix time in milliseconds '
            ~ 'from 0 to 253402300799999, not ' ~ shown) }}
    {%- elif kind == 'percent_or_null' and value is not none and not var_is_percent(value) -%}
        {{ return('var ' ~ name ~ ' must be null (every user) or a percentage of users '
            ~ 'greater than 0 and at most 100, such as 1 or 0.5, not ' ~ shown) }}
    {%- elif kind == 'batches_per_s' and not var_is_rate(value) -%}
        {{ return('var ' ~ name ~ ' must be a number of batches per second greater than 0 '
            ~ 'and at most 100000, such as 250, not ' ~ shown) }}
    {%- elif kind == 'identity_types' and not var_is_name_list(value) -%}
        {{ return('var ' ~ name ~ ' must be a list of user identity type names, not ' ~ shown) }}
    {%- elif kind == 'fix_names' and value is not none and not var_is_name_list(value) -%}
        {{ return('var ' ~ name ~ ' must be a list of fix model names, not ' ~ shown) }}
    {%- elif kind == 'identity_type_or_mpid'
            and not (value is string and modules.re.fullmatch('[a-z][a-z0-9_]*', value)) -%}
        {{ return('var ' ~ name ~ ' must be a user identity type name (customer_id, email, ...) '
            ~ 'or mpid, not ' ~ shown) }}
    {%- elif kind == 'id_length' and not var_is_whole_number(value, 1, 1000) -%}
        {{ return('var ' ~ name ~ ' must be a whole number from 1 to 1000, not ' ~ shown) }}
    {%- elif kind == 'backfill_id_or_null' and value is not none
            and not (value is string and 1 <= value | length <= 64
                and modules.re.fullmatch('[A-Za-z0-9_.:-]+', value)) -%}
        {{ return('var ' ~ name ~ ' must be null (off) or a backfill identifier of 1 to 64 '
            ~ 'letters, digits and _ . : -, not ' ~ shown) }}
    {%- elif kind == 'integration_names' and value is not none
            and not var_is_lowercase_name_list(value) -%}
        {{ return('var ' ~ name ~ ' must be a list of integration names (lowercase letters, '
            ~ 'digits and _, as in seeds/integration_limits.csv), not ' ~ shown) }}
    {%- elif kind == 'destination_names' and not var_is_lowercase_name_list(value) -%}
        {{ return('var ' ~ name ~ ' must be a list of direct destination names (folders of '
            ~ 'models/destinations/), not ' ~ shown) }}
    {%- elif kind == 'text_or_null' and value is not none and not (value is string and value) -%}
        {{ return('var ' ~ name ~ ' must be null or a folder path or URI, not ' ~ shown) }}
    {%- elif kind == 'data_plan_policy' and value not in ('keep', 'drop', 'set') -%}
        {{ return('var ' ~ name ~ ' must be keep, drop or set, not ' ~ shown) }}
    {%- elif kind == 'data_plan_override' -%}
        {%- if value is not mapping -%}
            {{ return('var ' ~ name ~ ' must be {plan_id: ..., plan_version: ...}, not ' ~ shown) }}
        {%- elif value.get('plan_id') is not none and value.get('plan_id') is not string -%}
            {{ return('var ' ~ name ~ '.plan_id must be a text or null, not '
                ~ "'" ~ value.get('plan_id') ~ "'") }}
        {%- elif value.get('plan_version') is not none
                and not var_is_whole_number(value.get('plan_version'), 0, 9223372036854775807) -%}
            {{ return('var ' ~ name ~ '.plan_version must be a whole number or null, not '
                ~ "'" ~ value.get('plan_version') ~ "'") }}
        {%- endif -%}
    {%- endif -%}
    {{ return(none) }}
{%- endmacro %}

{% macro var_name_distance(a, b) -%}
    {#- Levenshtein distance between two names. -#}
    {%- set ns = namespace(previous=range(b | length + 1) | list) -%}
    {%- for i in range(1, a | length + 1) -%}
        {%- set row = namespace(cells=[i]) -%}
        {%- for j in range(1, b | length + 1) -%}
            {%- set cost = 0 if a[i - 1] == b[j - 1] else 1 -%}
            {%- set row.cells = row.cells
                + [[ns.previous[j] + 1, row.cells[j - 1] + 1, ns.previous[j - 1] + cost] | min] -%}
        {%- endfor -%}
        {%- set ns.previous = row.cells -%}
    {%- endfor -%}
    {{ return(ns.previous[-1]) }}
{%- endmacro %}

{% macro check_project_vars() -%}
    {#- Checked when the hooks run, not while dbt parses: the invocation is then recorded in
        meta.build_attempts as failed, and `loader push` refuses the older replay set. -#}
    {%- if execute -%}
    {%- set kinds = project_var_kinds() -%}
    {%- set destinations = [] -%}
    {%- for node in graph.nodes.values() if node.resource_type == 'model'
            and node.fqn[1:2] == ['destinations'] and node.fqn | length > 3 -%}
        {%- do destinations.append(node.fqn[2]) -%}
        {%- do kinds.update(node.config.meta.get('project_vars', {})) -%}
    {%- endfor -%}
    {%- for name, kind in kinds.items() -%}
        {%- set problem = var_problem(name, var(name, none), kind) -%}
        {%- if problem -%}
            {{ stop_build_on_vars(problem) }}
        {%- endif -%}
    {%- endfor -%}
    {%- for name in var('direct_destinations', []) or [] if name not in destinations -%}
        {{ stop_build_on_vars('var direct_destinations: ' ~ name ~ ' is not a direct destination '
            ~ '(no models in models/destinations/' ~ name ~ '/)') }}
    {%- endfor -%}
    {%- if var('data_plan_policy') == 'set' and not var('data_plan_override', {}).get('plan_id') -%}
        {{ stop_build_on_vars(
            "data_plan_policy 'set' needs var data_plan_override: {plan_id: ..., plan_version: ...}") }}
    {%- endif -%}
    {#- names given with --vars that are none of the project's, but close to one -#}
    {%- set given = invocation_args_dict.get('vars') or {} -%}
    {%- if given is string -%} {%- set given = fromyaml(given) or {} -%} {%- endif -%}
    {%- for name in given if name not in kinds -%}
        {%- set close = [] -%}
        {%- for known in kinds
                if var_name_distance(name | lower, known) <= 2
                or (([name | length, known | length] | min) >= 8
                    and (known.startswith(name | lower) or (name | lower).startswith(known))) -%}
            {%- do close.append(known) -%}
        {%- endfor -%}
        {%- if close -%}
            {%- do exceptions.warn('var ' ~ name ~ ' is not a var of this project (did you mean '
                ~ close | join(' or ') ~ '?); it is ignored') -%}
        {%- endif -%}
    {%- endfor -%}
    {%- endif -%}
{%- endmacro %}


{% macro stop_build_on_vars(problem) -%}
    {#- Record this invocation as failed in meta.build_attempts, then stop with `problem`. -#}
    {%- if execute and target.type == 'spark' -%}
        {%- do spark_record_build_attempt('failed', false, ['project vars']) -%}
    {%- elif execute -%}
        {%- do run_query(
            "update meta.build_attempts set finished_at = now(), status = 'failed', "
            ~ "failed_nodes = ['project vars'] where invocation_id = '" ~ invocation_id ~ "'") -%}
    {%- endif -%}
    {{ exceptions.raise_compiler_error(problem) }}
{%- endmacro %}
