-- The query fingerprints of [$start, $end), by count, with their mean and p95 latency.
with profiles as (
    select fingerprint,
           count(*) as queries,
           round(avg(duration_ms), 2) as mean_ms,
           round(quantile_cont(duration_ms, 0.95), 2) as p95_ms
    from v_queries
    where ts >= $start and ts < $end
    group by fingerprint
), final as (
    select * from profiles
)
select * from final order by queries desc, fingerprint limit $n
