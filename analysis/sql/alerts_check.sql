-- The alerts of alerts/rules.yaml as one check on the loaded tables (auth_events, db_queries),
-- for a scheduled job without Prometheus. One row per rule at the evaluation time pm_at
-- (null: the start of the last bucket of auth events, i.e. the end of the last whole bucket):
-- its value over the window before it, and whether it fires (above its threshold at this and
-- the for_evals evaluations before). The database's queries count by their own time and their
-- caller, as the service's counter would; the latency rule needs the histogram and is left to
-- Prometheus. Every value comes from the variables set at the top of alerts/check.sql.
with at_time as (
    select coalesce(
               getvariable('pm_at')::timestamp,
               (select time_bucket(getvariable('pm_bucket')::interval, max(ts)) from auth_events)
           ) as t
), evals as (
    select t - i * getvariable('pm_bucket')::interval as eval_at, i
    from at_time, range(0, getvariable('pm_max_for') + 1) r(i)
), auth as (
    select e.eval_at, e.i,
           count(a.ts) as attempts,
           count(a.ts) filter (
               where a.outcome = 'failure'
                 and (a.error_code is null
                      or not list_contains(getvariable('pm_user_codes'), a.error_code))
           ) as system_failures
    from evals e
    left join auth_events a
      on a.ts >= e.eval_at - getvariable('pm_window')::interval and a.ts < e.eval_at
    group by all
), queries as (
    select e.eval_at, q.fingerprint, count(*) as queries
    from evals e
    join db_queries q
      on q.ts >= e.eval_at - getvariable('pm_window')::interval and q.ts < e.eval_at
     and q.caller = getvariable('pm_auth_caller')
    group by all
), per_eval as (
    select a.eval_at, a.i, a.attempts, a.system_failures,
           coalesce(sum(q.queries), 0) as auth_queries,
           coalesce(map_from_entries(list({'key': q.fingerprint, 'value': q.queries})
                    filter (where q.fingerprint is not null)), map()) as by_fingerprint
    from auth a
    left join queries q using (eval_at)
    group by all
), rules as (
    select unnest(getvariable('pm_rules'), recursive := true)
), valued as (
    select r.name, r.signal, r.fingerprint, r.threshold, r.for_evals, p.eval_at, p.i,
           case r.signal
               when 'system_failure_ratio' then p.system_failures / nullif(p.attempts, 0)
               when 'queries_per_attempt' then p.auth_queries / nullif(p.attempts, 0)
               when 'fingerprint' then
                   coalesce(p.by_fingerprint[r.fingerprint], 0) / nullif(p.attempts, 0)
           end as value
    from rules r
    join per_eval p on p.i <= r.for_evals
), final as (
    select name, signal, fingerprint, threshold, for_evals,
           max(eval_at) as evaluated_at,
           arg_min(value, i) as value,
           bool_and(coalesce(value > threshold, false)) as firing
    from valued
    group by all
)
select * from final order by name, fingerprint
