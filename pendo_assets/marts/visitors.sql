-- One row per visitor: every attribute of `pendo.visitors` plus lifetime activity over the
-- loaded history. Visitors seen in events but missing from `pendo.visitors` are kept.
WITH act AS (
    SELECT visitor_id,
           any_value(visitor_email) AS visitor_email,
           min(day) AS first_active_day,
           max(day) AS last_active_day,
           count(*) AS count_active_days,
           sum(sum_events) AS sum_events,
           sum(sum_minutes) AS sum_minutes
    FROM analytics.visitor_daily_metrics
    GROUP BY visitor_id
),
acc AS (
    SELECT visitor_id, count(DISTINCT account_id) AS count_accounts
    FROM analytics.events
    WHERE coalesce(account_id, '') <> ''
    GROUP BY visitor_id
),
nps AS (
    -- NPS answers (0-10) of the visitor: the latest by browser time, the mean and how many.
    SELECT visitor_id,
           arg_max(nps_score, browser_time) AS latest_nps_score,
           avg(nps_score) AS avg_nps_score,
           count(*) AS count_nps_responses
    FROM analytics.poll_events
    WHERE nps_score IS NOT NULL AND coalesce(visitor_id, '') <> ''
    GROUP BY visitor_id
)
SELECT coalesce(v.visitor_id, act.visitor_id) AS visitor_id,
       coalesce(act.visitor_email, v.metadata_agent_email) AS visitor_email,
       act.first_active_day,
       act.last_active_day,
       coalesce(act.count_active_days, 0)::BIGINT AS count_active_days,
       coalesce(act.sum_events, 0)::BIGINT AS sum_events,
       coalesce(act.sum_minutes, 0)::BIGINT AS sum_minutes,
       coalesce(acc.count_accounts, 0)::BIGINT AS count_accounts,
       nps.latest_nps_score,
       nps.avg_nps_score,
       coalesce(nps.count_nps_responses, 0)::BIGINT AS count_nps_responses,
       v.* EXCLUDE (visitor_id)
FROM pendo.visitors v
FULL JOIN act ON act.visitor_id = v.visitor_id
LEFT JOIN acc ON acc.visitor_id = coalesce(v.visitor_id, act.visitor_id)
LEFT JOIN nps ON nps.visitor_id = coalesce(v.visitor_id, act.visitor_id)
