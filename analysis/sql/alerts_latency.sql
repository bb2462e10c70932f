-- Per time bucket and histogram bound, how many queries took at most that long: the
-- cumulative `le` buckets a Prometheus histogram of query durations would have counted.
with bounds as (
    select unnest($bounds_ms::double[]) as le_ms
), queries as (
    select time_bucket($bucket::interval, ts) as bucket, duration_ms
    from v_queries
), final as (
    select q.bucket, b.le_ms,
           count(*) filter (where q.duration_ms <= b.le_ms) as observations
    from queries q
    cross join bounds b
    group by all
)
select * from final order by bucket, le_ms
