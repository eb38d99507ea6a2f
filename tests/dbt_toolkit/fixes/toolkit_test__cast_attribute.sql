{{ config(materialized='ephemeral') }}
-- Test-only (not in the fix chain): cast_attribute to each type, one CTE per cast.

with events as (
    select * from {{ ref('int_events__classified') }}
),

price_as_number as (
    select * replace ({{ cast_attribute('price', 'number') }}),
    from events
),

quantity_as_integer as (
    select * replace ({{ cast_attribute('quantity', 'integer') }}),
    from price_as_number
),

order_id_as_string as (
    select * replace ({{ cast_attribute('order_id', 'string') }}),
    from quantity_as_integer
),

is_gift_as_boolean as (
    select * replace ({{ cast_attribute('is_gift', 'boolean') }}),
    from order_id_as_string
)

select * from is_gift_as_boolean
