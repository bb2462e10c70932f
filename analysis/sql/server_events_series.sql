-- The database's own errors per time bucket and kind (see server_events.sql), for the
-- chart: one row per bucket and kind that has any.
with kinded as (
    select time_bucket($bucket::interval, e.ts) as bucket,
           server_event_kind(e.severity, e.message) as kind
    from v_server_events e
    where e.ts is not null
), final as (
    select k.bucket, k.kind, count(*) as events
    from kinded k
    where k.kind is not null
    group by k.bucket, k.kind
)
select * from final order by bucket, kind
