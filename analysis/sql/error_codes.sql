-- Failures per time bucket and error code (codes with no failure in a bucket are absent).
with failures as (
    select time_bucket($bucket::interval, ts) as bucket,
           coalesce(error_code, '(none)') as error_code,
           is_system_failure(outcome, error_code, $codes) as is_system,
           count(*) as failures
    from v_auth
    where outcome = 'failure'
    group by all
), final as (
    select * from failures
)
select * from final order by bucket, error_code
