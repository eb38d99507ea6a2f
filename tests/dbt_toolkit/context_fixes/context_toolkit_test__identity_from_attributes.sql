{{ config(materialized='ephemeral') }}
-- Test-only (not in the context fix chain): set_identity from a user attribute, then from
-- a custom attribute of the batch's events.

with batches as (
    select * from {{ ref('stg_quarantine__batches') }}
),

from_user_attribute as (
    select * replace ({{ set_identity('customer_id', identity_from_user_attribute('account_id')) }}),
    from batches
),

from_event_attribute as (
    select * replace ({{ set_identity('email', identity_from_event_attribute('contact_email')) }}),
    from from_user_attribute as batches
)

select * from from_event_attribute
