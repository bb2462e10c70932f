-- Auth and query figures of the declared window [$start, $end) and of the baseline (everything
-- outside [$start - guard, $end + guard)), in one pass over each view: attempts, failures,
-- users (active, with a system failure, with a user-class failure; attempts without a user
-- count as attempts, not users), queries per auth, and database latency. One row per period
-- ('incident', 'baseline').
with periods as (
    select * from (values ('incident'), ('baseline')) p(period)
), auth as (
    select period_of(ts, $start, $end, $guard::interval) as period,
           count(*) as attempts,
           count(*) filter (where outcome = 'failure') as failures,
           count(*) filter (where is_system_failure(outcome, error_code, $codes)) as system_failures,
           count(*) filter (where user_id is null) as attempts_without_user,
           count(distinct user_id) as users_active,
           count(distinct user_id) filter (
               where is_system_failure(outcome, error_code, $codes)
           ) as users_affected,
           count(distinct user_id) filter (
               where outcome = 'failure' and not is_system_failure(outcome, error_code, $codes)
           ) as users_user_failed
    from v_auth
    group by 1
), auth_queries as (
    select period_of(ts, $start, $end, $guard::interval) as period,
           count(*) as auth_queries
    from v_auth_queries
    group by 1
), latency as (
    select period_of(ts, $start, $end, $guard::interval) as period,
           count(*) as queries,
           quantile_cont(duration_ms, 0.95) as latency_p95_ms
    from v_queries
    group by 1
), final as (
    select p.period,
           coalesce(a.attempts, 0) as attempts,
           coalesce(a.failures, 0) as failures,
           coalesce(a.system_failures, 0) as system_failures,
           coalesce(a.attempts_without_user, 0) as attempts_without_user,
           coalesce(a.users_active, 0) as users_active,
           coalesce(a.users_affected, 0) as users_affected,
           coalesce(a.users_user_failed, 0) as users_user_failed,
           coalesce(q.auth_queries, 0) as auth_queries,
           coalesce(l.queries, 0) as queries,
           l.latency_p95_ms
    from periods p
    left join auth a using (period)
    left join auth_queries q using (period)
    left join latency l using (period)
)
select * from final
