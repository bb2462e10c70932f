-- One row per time bucket over the whole data: auth attempts, failures, users, bypass logins,
-- database queries with latency percentiles, and the queries issued per auth attempt.
-- Empty buckets are filled with zeros so that a silent minute is visible as one.
with auth as (
    select time_bucket($bucket::interval, ts) as bucket,
           count(*) as attempts,
           count(*) filter (where outcome = 'failure') as failures,
           count(*) filter (where is_system_failure(outcome, error_code, $codes)) as system_failures,
           count(distinct user_id) as users,
           count(*) filter (where auth_path = 'bypass') as bypass_logins,
           count(distinct user_id) filter (where auth_path = 'bypass') as bypass_users
    from v_auth
    group by 1
), queries as (
    -- one aggregate for the three quantiles: each quantile holds every value of its bucket
    select bucket, queries,
           q[1] as latency_p50_ms, q[2] as latency_p95_ms, q[3] as latency_p99_ms
    from (
        select time_bucket($bucket::interval, ts) as bucket,
               count(*) as queries,
               quantile_cont(duration_ms, [0.50, 0.95, 0.99]) as q
        from v_queries
        group by 1
    )
), auth_queries as (
    select time_bucket($bucket::interval, ts) as bucket, count(*) as auth_queries
    from v_auth_queries
    group by 1
), bounds as (
    select min(bucket) as lo, max(bucket) as hi
    from (select bucket from auth union all select bucket from queries)
), buckets as (
    select unnest(range(lo, hi + $bucket::interval, $bucket::interval)) as bucket
    from bounds
    where lo is not null
), final as (
    select b.bucket,
           coalesce(a.attempts, 0) as attempts,
           coalesce(a.failures, 0) as failures,
           coalesce(a.system_failures, 0) as system_failures,
           coalesce(a.failures, 0) - coalesce(a.system_failures, 0) as user_failures,
           coalesce(a.failures, 0) / nullif(a.attempts, 0) as error_rate,
           coalesce(a.system_failures, 0) / nullif(a.attempts, 0) as system_error_rate,
           (coalesce(a.failures, 0) - coalesce(a.system_failures, 0))
               / nullif(a.attempts, 0) as user_error_rate,
           coalesce(a.users, 0) as users,
           coalesce(a.bypass_logins, 0) as bypass_logins,
           coalesce(a.bypass_users, 0) as bypass_users,
           coalesce(q.queries, 0) as queries,
           coalesce(aq.auth_queries, 0) as auth_queries,
           coalesce(aq.auth_queries, 0) / nullif(a.attempts, 0) as queries_per_auth,
           q.latency_p50_ms,
           q.latency_p95_ms,
           q.latency_p99_ms
    from buckets b
    left join auth a using (bucket)
    left join queries q using (bucket)
    left join auth_queries aq using (bucket)
)
select * from final order by bucket
