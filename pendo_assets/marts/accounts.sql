-- One row per account: every attribute of `pendo.accounts` plus lifetime activity over the
-- loaded history. Accounts seen in events but missing from `pendo.accounts` are kept.
WITH act AS (
    SELECT account_id,
           any_value(account_name) AS account_name,
           min(day) AS first_active_day,
           max(day) AS last_active_day,
           count(*) AS count_active_days,
           sum(sum_events) AS sum_events,
           sum(sum_minutes) AS sum_minutes
    FROM analytics.account_daily_metrics
    WHERE account_id <> ''  -- the day's activity without an account
    GROUP BY account_id
),
vis AS (
    SELECT account_id, count(DISTINCT visitor_id) AS count_visitors
    FROM analytics.events
    WHERE coalesce(account_id, '') <> ''
    GROUP BY account_id
),
nps AS (
    -- NPS answers (0-10) of the account: the latest by browser time, the mean and how many.
    SELECT account_id,
           arg_max(nps_score, browser_time) AS latest_nps_score,
           avg(nps_score) AS avg_nps_score,
           count(*) AS count_nps_responses
    FROM analytics.poll_events
    WHERE nps_score IS NOT NULL AND coalesce(account_id, '') <> ''
    GROUP BY account_id
)
SELECT coalesce(a.account_id, act.account_id) AS account_id,
       coalesce(act.account_name, a.metadata_agent_name) AS account_name,
       act.first_active_day,
       act.last_active_day,
       coalesce(act.count_active_days, 0)::BIGINT AS count_active_days,
       coalesce(act.sum_events, 0)::BIGINT AS sum_events,
       coalesce(act.sum_minutes, 0)::BIGINT AS sum_minutes,
       coalesce(vis.count_visitors, 0)::BIGINT AS count_visitors,
       nps.latest_nps_score,
       nps.avg_nps_score,
       coalesce(nps.count_nps_responses, 0)::BIGINT AS count_nps_responses,
       a.* EXCLUDE (account_id)
FROM pendo.accounts a
FULL JOIN act ON act.account_id = a.account_id
LEFT JOIN vis ON vis.account_id = coalesce(a.account_id, act.account_id)
LEFT JOIN nps ON nps.account_id = coalesce(a.account_id, act.account_id)
