-- Every error code of a failure, with the class it is given (user: in $codes; system: all
-- others, and a failure without a code) and its failures in the declared window and the
-- baseline. One row per code, most failures in the window first.
with failures as (
    select coalesce(error_code, '(none)') as error_code,
           case when is_system_failure(outcome, error_code, $codes) then 'system'
                else 'user' end as class,
           period_of(ts, $start, $end, $guard::interval) as period
    from v_auth
    where outcome = 'failure'
), final as (
    select error_code,
           any_value(class) as class,
           count(*) filter (where period = 'incident') as incident,
           count(*) filter (where period = 'baseline') as baseline
    from failures
    group by error_code
)
select * from final order by incident desc, baseline desc, error_code
