-- Per time bucket and fingerprint, the auth service's queries (bucketed by the time of the
-- attempt that issued them, as queries_per_auth in series.sql): the per-fingerprint counter
-- that the alert rules' unit test replays.
with counted as (
    select time_bucket($bucket::interval, ts) as bucket,
           fingerprint,
           count(*) as queries
    from v_auth_queries
    group by all
), final as (
    select bucket, fingerprint, queries from counted
)
select * from final order by bucket, fingerprint
