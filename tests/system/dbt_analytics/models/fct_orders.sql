select 10 as order_id, user_id from {{ ref('dim_users') }}
