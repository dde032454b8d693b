-- One row per feature (tagged in `pendo.features`, or clicked but since deleted): lifetime
-- clicks, minutes, click records, active days and distinct visitors/accounts over the loaded
-- history. Days of the feature_daily_metrics date spine without clicks are not active days.
WITH act AS (
    SELECT feature_id,
           arg_max(feature_name, day) AS feature_name,
           arg_max(page_name, day) AS page_name,
           arg_max(group_name, day) AS group_name,
           min(day) AS first_click_day,
           max(day) AS last_click_day,
           count(*) AS count_active_days,
           sum(sum_clicks) AS sum_clicks,
           sum(sum_minutes) AS sum_minutes,
           sum(count_click_events) AS count_click_events
    FROM analytics.feature_daily_metrics
    WHERE count_click_events > 0
    GROUP BY feature_id
),
vis AS (
    SELECT feature_id, count(*) AS count_visitors
    FROM analytics.feature_first_seen
    GROUP BY feature_id
),
acc AS (
    SELECT feature_id, count(*) AS count_accounts
    FROM analytics.feature_account_first_seen
    GROUP BY feature_id
)
SELECT coalesce(f.id, act.feature_id) AS feature_id,
       coalesce(f.name, act.feature_name) AS feature_name,
       f.app_id,
       f.page_id,
       coalesce(p.name, act.page_name) AS page_name,
       coalesce(f.group_name, act.group_name) AS group_name,
       f.id IS NULL AS is_deleted,
       act.first_click_day,
       act.last_click_day,
       coalesce(act.count_active_days, 0)::BIGINT AS count_active_days,
       coalesce(act.sum_clicks, 0)::BIGINT AS sum_clicks,
       coalesce(vis.count_visitors, 0)::BIGINT AS count_visitors,
       coalesce(acc.count_accounts, 0)::BIGINT AS count_accounts,
       coalesce(act.sum_minutes, 0)::BIGINT AS sum_minutes,
       coalesce(act.count_click_events, 0)::BIGINT AS count_click_events
FROM pendo.features f
FULL JOIN act ON act.feature_id = f.id
LEFT JOIN pendo.pages p ON p.id = f.page_id
LEFT JOIN vis ON vis.feature_id = coalesce(f.id, act.feature_id)
LEFT JOIN acc ON acc.feature_id = coalesce(f.id, act.feature_id)
