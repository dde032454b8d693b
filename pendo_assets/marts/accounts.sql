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
    GROUP BY account_id
),
vis AS (
    SELECT account_id, count(DISTINCT visitor_id) AS count_visitors
    FROM analytics.events
    WHERE coalesce(account_id, '') <> ''
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
       a.* EXCLUDE (account_id)
FROM pendo.accounts a
FULL JOIN act ON act.account_id = a.account_id
LEFT JOIN vis ON vis.account_id = coalesce(a.account_id, act.account_id)
