select 1 as user_id, 'ada@example.com' as email
