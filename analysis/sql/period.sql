-- Auth and query figures for one period [$start, $end) — or, with $baseline, for everything
-- outside [$start - guard, $end + guard): attempts, failures, users, queries per auth,
-- and database latency.
with auth as (
    select *
    from v_auth
    where case when $baseline then ts < $start - $guard::interval or ts >= $end + $guard::interval
               else ts >= $start and ts < $end end
), auth_figures as (
    select count(*) as attempts,
           count(*) filter (where outcome = 'failure') as failures,
           count(*) filter (where is_system_failure(outcome, error_code, $codes)) as system_failures,
           count(distinct user_id) as users_active,
           count(distinct user_id) filter (
               where is_system_failure(outcome, error_code, $codes)
           ) as users_affected
    from auth
), auth_queries as (
    select count(*) as auth_queries
    from v_auth_queries
    where case when $baseline then ts < $start - $guard::interval or ts >= $end + $guard::interval
               else ts >= $start and ts < $end end
), latency as (
    select count(*) as queries,
           quantile_cont(duration_ms, 0.95) as latency_p95_ms
    from v_queries
    where case when $baseline then ts < $start - $guard::interval or ts >= $end + $guard::interval
               else ts >= $start and ts < $end end
), final as (
    select a.*, q.auth_queries, l.queries, l.latency_p95_ms
    from auth_figures a, auth_queries q, latency l
)
select * from final
