-- The database's own errors (v_server_events: FATAL, ERROR and PANIC entries of this
-- report's PostgreSQL logs) by kind: how many in the declared window [$start, $end) and in
-- the baseline (outside it and its guard margins), how many in all, and the first and last
-- of each kind over all the data and in the window. One row per kind that occurs.
with kinded as (
    select server_event_kind(e.severity, e.message) as kind,
           e.ts,
           period_of(e.ts, $start, $end, $guard::interval) as period
    from v_server_events e
    where e.ts is not null
), final as (
    select k.kind,
           count(*) filter (where k.period = 'incident') as incident,
           count(*) filter (where k.period = 'baseline') as baseline,
           count(*) as total,
           min(k.ts) as first,
           max(k.ts) as last,
           min(k.ts) filter (where k.period = 'incident') as incident_first,
           max(k.ts) filter (where k.period = 'incident') as incident_last
    from kinded k
    where k.kind is not null
    group by k.kind
)
select * from final order by kind
