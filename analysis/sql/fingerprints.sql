-- The pt-query-digest profile of the auth queries, window beside baseline: per fingerprint,
-- count, total, mean and p95 time, and queries per auth attempt in each period; ranked by
-- the rise in per-auth rate.
with tagged as (
    -- sums in decimal: a sum of doubles depends on the order the threads add them in, and
    -- its last digit could flip a rounded figure between two runs. A duration of 1e20 ms or
    -- more (no real one) has no exact form here: its group is summed as doubles.
    select fingerprint, duration_ms,
           case when duration_ms < 1e20 then duration_ms::decimal(38, 6) end as exact_ms,
           period_of(ts, $start, $end, $guard::interval) as period
    from v_auth_queries
), per_period as (
    -- one profile per fingerprint and period, then window and baseline side by side
    select fingerprint, period,
           count(*) as n,
           case when count(*) filter (where exact_ms is null) = 0
                then sum(exact_ms)::double else sum(duration_ms) end as total_ms,
           case when count(*) filter (where exact_ms is null) = 0
                then (sum(exact_ms) / count(*))::double else avg(duration_ms) end as mean_ms,
           quantile_cont(duration_ms, 0.95) as p95_ms
    from tagged
    where period is not null
    group by fingerprint, period
), per_fp as (
    select fingerprint,
           coalesce(any_value(n) filter (where period = 'incident'), 0) as incident_count,
           any_value(total_ms) filter (where period = 'incident') as incident_total_ms,
           any_value(mean_ms) filter (where period = 'incident') as incident_mean_ms,
           any_value(p95_ms) filter (where period = 'incident') as incident_p95_ms,
           coalesce(any_value(n) filter (where period = 'baseline'), 0) as baseline_count,
           any_value(total_ms) filter (where period = 'baseline') as baseline_total_ms,
           any_value(mean_ms) filter (where period = 'baseline') as baseline_mean_ms,
           any_value(p95_ms) filter (where period = 'baseline') as baseline_p95_ms
    from per_period
    group by fingerprint
), final as (
    select fingerprint,
           baseline_count / nullif($baseline_attempts, 0) as baseline_per_auth,
           incident_count / nullif($incident_attempts, 0) as incident_per_auth,
           coalesce(incident_count / nullif($incident_attempts, 0), 0)
               - coalesce(baseline_count / nullif($baseline_attempts, 0), 0) as rise_per_auth,
           incident_count, incident_total_ms, incident_mean_ms, incident_p95_ms,
           baseline_count, baseline_total_ms, baseline_mean_ms, baseline_p95_ms
    from per_fp
)
select * from final order by rise_per_auth desc, fingerprint limit $limit
