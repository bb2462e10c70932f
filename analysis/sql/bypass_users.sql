-- Users who got in without the database check, pseudonymized with a keyed hash unless
-- $redact is false: they need re-verification.
with bypass as (
    select user_id, ts from v_auth where auth_path = 'bypass'
), per_user as (
    select user_id, count(*) as logins, min(ts) as first, max(ts) as last
    from bypass
    group by user_id
), final as (
    select case when $redact then pseudonym($key, user_id) else user_id end as user,
           logins, iso_text(first) as first, iso_text(last) as last
    from per_user
)
select * from final order by user
