-- The users with the most system failures in the selection of two stretches (see
-- stretch_signals.sql), with their attempts there and in the baseline; keyed pseudonyms
-- unless $redact is false (attempts without a user are not a user, and are left out).
with tagged as (
    select user_id,
           is_system_failure(outcome, error_code, $codes) as failed,
           stretch_of(ts, $sel_start, $sel_end, $base_start, $base_end, $rest, $guard::interval)
               as stretch
    from v_auth
    where user_id is not null
), users as (
    select user_id,
           count(*) filter (where stretch = 'selection' and failed) as selection_system_failures,
           count(*) filter (where stretch = 'selection') as selection_attempts,
           count(*) filter (where stretch = 'baseline' and failed) as baseline_system_failures,
           count(*) filter (where stretch = 'baseline') as baseline_attempts
    from tagged
    where stretch is not null
    group by user_id
    having count(*) filter (where stretch = 'selection' and failed) > 0
), final as (
    select case when $redact then pseudonym($key, user_id) else user_id end as user,
           selection_system_failures, selection_attempts,
           baseline_system_failures, baseline_attempts
    from users
)
select * from final order by selection_system_failures desc, user limit $n
