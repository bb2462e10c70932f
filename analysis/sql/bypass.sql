-- Logins granted without the database check (auth_path = 'bypass') over all the data:
-- how many, by how many users, first and last, and the last auth event of the data.
with bypass as (
    select * from v_auth where auth_path = 'bypass'
), final as (
    select count(*) as logins,
           count(distinct user_id) as users,
           min(ts) as first,
           max(ts) as last,
           (select max(ts) from v_auth) as data_end
    from bypass
)
select * from final
