-- Per kind ('auth', 'queries') and hour that holds rows of the report: how many, the first and
-- the last instant. What the span rule (analysis/figures/span.py) walks to find where the data is
-- dense around the window, and counts what lies outside it with: one pass over each view.
with auth as (
    select 'auth' as kind, time_bucket(interval 1 hour, ts) as hour,
           count(*) as rows, min(ts) as first, max(ts) as last
    from v_auth
    group by 2
), queries as (
    select 'queries' as kind, time_bucket(interval 1 hour, ts) as hour,
           count(*) as rows, min(ts) as first, max(ts) as last
    from v_queries
    group by 2
), final as (
    select * from auth
    union all
    select * from queries
)
select * from final order by hour, kind
