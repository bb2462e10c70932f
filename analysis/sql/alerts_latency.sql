-- Per time bucket and histogram bound, how many queries took at most that long: the
-- cumulative `le` buckets a Prometheus histogram of query durations would have counted
-- (DuckDB's histogram() counts each value in the first bound at or above it, as `le` does).
with per_bucket as (
    select time_bucket($bucket::interval, ts) as bucket,
           histogram(duration_ms, $bounds_ms::double[]) as bins
    from v_queries
    group by 1
), bins as (
    select bucket, unnest(map_entries(bins), recursive := true)
    from per_bucket
), counted as (
    select bucket, key as le_ms, value as queries from bins
), final as (
    select bucket, le_ms,
           sum(queries) over (partition by bucket order by le_ms) as observations
    from counted
)
select bucket, le_ms, observations::bigint as observations
from final
where le_ms <> 'infinity'::double
order by bucket, le_ms
