select 100 as account_id, 'Analytical Engines' as account_name
