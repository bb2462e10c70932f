-- The users with the most system failures in [$start, $end), as keyed pseudonyms unless
-- $redact is false (attempts without a user are not a user, and are left out).
with users as (
    select user_id,
           count(*) as attempts,
           count(*) filter (where is_system_failure(outcome, error_code, $codes))
               as system_failures
    from v_auth
    where ts >= $start and ts < $end and user_id is not null
    group by user_id
), final as (
    select case when $redact then pseudonym($key, user_id) else user_id end as user,
           attempts,
           system_failures
    from users
)
select * from final order by system_failures desc, user limit $n
