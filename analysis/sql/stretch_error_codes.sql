-- Failures per error code in each of two stretches (see stretch_signals.sql), with the class
-- each code is given (the user's or the system's). One row per code that failed in either.
with tagged as (
    select coalesce(error_code, '(none)') as error_code,
           is_system_failure(outcome, error_code, $codes) as is_system,
           stretch_of(ts, $sel_start, $sel_end, $base_start, $base_end, $rest, $guard::interval)
               as stretch
    from v_auth
    where outcome = 'failure'
), final as (
    select error_code,
           case when bool_or(is_system) then 'system' else 'user' end as class,
           count(*) filter (where stretch = 'selection') as selection_failures,
           count(*) filter (where stretch = 'baseline') as baseline_failures
    from tagged
    where stretch is not null
    group by error_code
)
select * from final order by error_code
