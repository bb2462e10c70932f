-- The pt-query-digest profile of the auth queries in two stretches (see stretch_signals.sql),
-- as fingerprints.sql gives it for the declared window and its baseline: per fingerprint,
-- count, total, mean and p95 time, and queries per auth attempt in each stretch; ranked by
-- the rise in per-auth rate.
with tagged as (
    -- sums in decimal, as fingerprints.sql: the same figures to the last digit
    select fingerprint, duration_ms,
           case when duration_ms < 1e20 then duration_ms::decimal(38, 6) end as exact_ms,
           stretch_of(ts, $sel_start, $sel_end, $base_start, $base_end, $rest, $guard::interval)
               as stretch
    from v_auth_queries
), per_stretch as (
    select fingerprint, stretch,
           count(*) as n,
           case when count(*) filter (where exact_ms is null) = 0
                then sum(exact_ms)::double else sum(duration_ms) end as total_ms,
           case when count(*) filter (where exact_ms is null) = 0
                then (sum(exact_ms) / count(*))::double else avg(duration_ms) end as mean_ms,
           quantile_cont(duration_ms, 0.95) as p95_ms
    from tagged
    where stretch is not null
    group by fingerprint, stretch
), per_fp as (
    select fingerprint,
           coalesce(any_value(n) filter (where stretch = 'selection'), 0) as selection_count,
           any_value(total_ms) filter (where stretch = 'selection') as selection_total_ms,
           any_value(mean_ms) filter (where stretch = 'selection') as selection_mean_ms,
           any_value(p95_ms) filter (where stretch = 'selection') as selection_p95_ms,
           coalesce(any_value(n) filter (where stretch = 'baseline'), 0) as baseline_count,
           any_value(total_ms) filter (where stretch = 'baseline') as baseline_total_ms,
           any_value(mean_ms) filter (where stretch = 'baseline') as baseline_mean_ms,
           any_value(p95_ms) filter (where stretch = 'baseline') as baseline_p95_ms
    from per_stretch
    group by fingerprint
), final as (
    select fingerprint,
           baseline_count / nullif($baseline_attempts, 0) as baseline_per_auth,
           selection_count / nullif($selection_attempts, 0) as selection_per_auth,
           coalesce(selection_count / nullif($selection_attempts, 0), 0)
               - coalesce(baseline_count / nullif($baseline_attempts, 0), 0) as rise_per_auth,
           selection_count, selection_total_ms, selection_mean_ms, selection_p95_ms,
           baseline_count, baseline_total_ms, baseline_mean_ms, baseline_p95_ms
    from per_fp
)
select * from final order by rise_per_auth desc, fingerprint limit $limit
