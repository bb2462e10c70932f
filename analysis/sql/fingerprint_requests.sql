-- The auth attempts in [$start, $end) whose request issued queries of one fingerprint: per
-- request, the attempt (time, user as a keyed pseudonym unless $redact is false, outcome,
-- error code, latency), its queries of that fingerprint and all its queries; most first.
with issued as (
    select request_id,
           count(*) filter (where fingerprint = $fingerprint) as fingerprint_queries,
           count(*) as queries,
           sum(duration_ms) filter (where fingerprint = $fingerprint) as fingerprint_ms
    from v_queries
    where request_id is not null
    group by request_id
    having count(*) filter (where fingerprint = $fingerprint) > 0
), attempts as (
    select request_id, min(ts) as ts, any_value(line order by ts, line) as line
    from v_auth
    where request_id is not null and ts >= $start and ts < $end
    group by request_id
), final as (
    select a.ts,
           i.request_id,
           case when $redact then pseudonym($key, e.user_id) else e.user_id end as user,
           e.outcome,
           e.error_code,
           e.latency_ms,
           i.fingerprint_queries,
           i.queries,
           i.fingerprint_ms
    from issued i
    join attempts a using (request_id)
    join v_auth e on e.request_id = a.request_id and e.ts = a.ts and e.line = a.line
)
select * from final order by fingerprint_queries desc, ts, request_id limit $n
