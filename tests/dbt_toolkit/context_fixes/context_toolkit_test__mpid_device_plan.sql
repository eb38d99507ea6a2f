{{ config(materialized='ephemeral') }}
-- Test-only (not in the context fix chain): set_mpid, drop_device_id, set_data_plan.

with batches as (
    select * from {{ ref('stg_quarantine__batches') }}
)

select
    * replace (
        {{ set_mpid('9223372036854775807', where="batch_key = 'b1'") }},
        {{ drop_device_id('ios_advertising_id') }},
        {{ set_data_plan('shop_plan', 4, where="data_plan_id = 'old_plan'") }}
    ),
from batches
