-- One row per guide (in `pendo.guides`, or with events but since deleted): lifetime counts of
-- each interaction type (other types in `count_guide_other`), all guide events, poll answers,
-- active days and distinct visitors/accounts. Days of the guide_daily_metrics date spine
-- without events are not active days.
WITH act AS (
    SELECT guide_id,
           arg_max(guide_name, day) AS guide_name,
           min(day) AS first_active_day,
           max(day) AS last_active_day,
           count(*) AS count_active_days,
           /* per guide event type: sum({col}) AS {col} */,
           sum(count_poll_responses) AS count_poll_responses,
           sum(count_guide_other) AS count_guide_other,
           sum(count_guide_events) AS count_guide_events
    FROM analytics.guide_daily_metrics
    WHERE count_guide_events > 0 OR count_poll_responses > 0
    GROUP BY guide_id
),
who AS (
    SELECT guide_id,
           count(DISTINCT visitor_id) AS count_visitors,
           count(DISTINCT account_id) FILTER (WHERE coalesce(account_id, '') <> '')
               AS count_accounts
    FROM (
        SELECT guide_id, visitor_id, account_id FROM analytics.guide_events
        UNION ALL
        SELECT guide_id, visitor_id, account_id FROM analytics.poll_events
    )
    GROUP BY guide_id
)
SELECT coalesce(g.id, act.guide_id) AS guide_id,
       coalesce(g.name, act.guide_name) AS guide_name,
       g.app_id,
       g.state,
       g.id IS NULL AS is_deleted,
       act.first_active_day,
       act.last_active_day,
       coalesce(act.count_active_days, 0)::BIGINT AS count_active_days,
       /* per guide event type: coalesce(act.{col}, 0)::BIGINT AS {col} */,
       coalesce(act.count_poll_responses, 0)::BIGINT AS count_poll_responses,
       coalesce(who.count_visitors, 0)::BIGINT AS count_visitors,
       coalesce(who.count_accounts, 0)::BIGINT AS count_accounts,
       coalesce(act.count_guide_other, 0)::BIGINT AS count_guide_other,
       coalesce(act.count_guide_events, 0)::BIGINT AS count_guide_events
FROM pendo.guides g
FULL JOIN act ON act.guide_id = g.id
LEFT JOIN who ON who.guide_id = coalesce(g.id, act.guide_id)
