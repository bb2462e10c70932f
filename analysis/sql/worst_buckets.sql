-- The buckets with the most system failures, with their attempts (for exploration).
with buckets as (
    select time_bucket($bucket::interval, ts) as bucket,
           count(*) filter (where is_system_failure(outcome, error_code, $codes))
               as system_failures,
           count(*) as attempts
    from v_auth
    group by 1
), final as (
    select * from buckets
)
select * from final order by system_failures desc, bucket limit $n
