-- Per time bucket and histogram bound, how many queries took at most that long: the
-- cumulative `le` buckets a Prometheus histogram of query durations would have counted.
-- Each bound is counted directly (duration <= bound), which DuckDB and Spark both run.
with bounds as (
    select unnest($bounds_ms::double[]) as le_ms
), final as (
    select time_bucket($bucket::interval, q.ts) as bucket,
           b.le_ms,
           count(*) filter (where q.duration_ms <= b.le_ms) as observations
    from v_queries q
    cross join bounds b
    group by 1, 2
)
select bucket, le_ms, observations::bigint as observations
from final
where le_ms <> 'infinity'::double
order by bucket, le_ms
