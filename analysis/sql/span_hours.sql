-- The hours that hold at least one auth event or query of the report, in order: what the
-- span rule (analysis/span.py) walks to find where the data is dense around the window.
with auth as (
    select distinct time_bucket(interval 1 hour, ts) as hour from v_auth
), queries as (
    select distinct time_bucket(interval 1 hour, ts) as hour from v_queries
), final as (
    select hour from auth
    union
    select hour from queries
)
select * from final order by hour
