-- The signals of two stretches side by side (stretch_of: the selection [$sel_start, $sel_end)
-- and the baseline, its own stretch or with $rest everything outside the selection and its
-- guard margins): attempts, failures, system failures, users, auth latency p95, bypass logins,
-- queries tied to attempts, all queries and their p95 latency, and the first and last auth
-- event of each. One row per stretch ('selection', 'baseline').
with stretches as (
    select * from (values ('selection'), ('baseline')) s(stretch)
), auth as (
    select stretch_of(ts, $sel_start, $sel_end, $base_start, $base_end, $rest, $guard::interval)
               as stretch,
           count(*) as attempts,
           count(*) filter (where outcome = 'failure') as failures,
           count(*) filter (where is_system_failure(outcome, error_code, $codes)) as system_failures,
           count(distinct user_id) as users_active,
           count(distinct user_id) filter (
               where is_system_failure(outcome, error_code, $codes)
           ) as users_affected,
           quantile_cont(latency_ms, 0.95) as auth_latency_p95_ms,
           count(*) filter (where auth_path = 'bypass') as bypass_logins,
           count(distinct user_id) filter (where auth_path = 'bypass') as bypass_users,
           min(ts) filter (where auth_path = 'bypass') as bypass_first,
           max(ts) filter (where auth_path = 'bypass') as bypass_last
    from v_auth
    group by 1
), auth_queries as (
    select stretch_of(ts, $sel_start, $sel_end, $base_start, $base_end, $rest, $guard::interval)
               as stretch,
           count(*) as auth_queries
    from v_auth_queries
    group by 1
), latency as (
    select stretch_of(ts, $sel_start, $sel_end, $base_start, $base_end, $rest, $guard::interval)
               as stretch,
           count(*) as queries,
           quantile_cont(duration_ms, 0.95) as db_latency_p95_ms
    from v_queries
    group by 1
), final as (
    select s.stretch,
           coalesce(a.attempts, 0) as attempts,
           coalesce(a.failures, 0) as failures,
           coalesce(a.system_failures, 0) as system_failures,
           coalesce(a.users_active, 0) as users_active,
           coalesce(a.users_affected, 0) as users_affected,
           a.auth_latency_p95_ms,
           coalesce(a.bypass_logins, 0) as bypass_logins,
           coalesce(a.bypass_users, 0) as bypass_users,
           a.bypass_first,
           a.bypass_last,
           coalesce(q.auth_queries, 0) as auth_queries,
           coalesce(l.queries, 0) as queries,
           l.db_latency_p95_ms
    from stretches s
    left join auth a using (stretch)
    left join auth_queries q using (stretch)
    left join latency l using (stretch)
)
select * from final
