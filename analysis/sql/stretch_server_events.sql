-- The database's own errors (v_server_events, kinds as server_events.sql) in two stretches
-- (see stretch_signals.sql): per kind, how many in each. One row per kind that occurs in
-- either.
with kinded as (
    select server_event_kind(e.severity, e.message) as kind,
           stretch_of(e.ts, $sel_start, $sel_end, $base_start, $base_end, $rest, $guard::interval)
               as stretch
    from v_server_events e
    where e.ts is not null
), final as (
    select kind,
           count(*) filter (where stretch = 'selection') as selection_events,
           count(*) filter (where stretch = 'baseline') as baseline_events
    from kinded
    where kind is not null and stretch is not null
    group by kind
)
select * from final order by kind
