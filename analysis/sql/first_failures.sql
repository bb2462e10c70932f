-- Per bucket, how many users had their first system failure then (the affected-users chart).
with firsts as (
    select user_id, min(ts) as first
    from v_auth
    where is_system_failure(outcome, error_code, $codes) and user_id is not null
    group by user_id
), final as (
    select time_bucket($bucket::interval, first) as bucket, count(*) as users
    from firsts
    group by 1
)
select * from final order by bucket
