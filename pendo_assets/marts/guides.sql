-- One row per guide (in `pendo.guides`, or with events but since deleted): lifetime counts of
-- each interaction type, poll answers, active days and distinct visitors/accounts.
WITH act AS (
    SELECT guide_id,
           arg_max(guide_name, day) AS guide_name,
           min(day) AS first_active_day,
           max(day) AS last_active_day,
           count(*) AS count_active_days,
           /* per guide event type: sum({col}) AS {col} */,
           sum(count_poll_responses) AS count_poll_responses
    FROM analytics.guide_daily_metrics
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
       coalesce(who.count_accounts, 0)::BIGINT AS count_accounts
FROM pendo.guides g
FULL JOIN act ON act.guide_id = g.id
LEFT JOIN who ON who.guide_id = coalesce(g.id, act.guide_id)
