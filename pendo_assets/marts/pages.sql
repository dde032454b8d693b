-- One row per page (tagged in `pendo.pages`, or viewed but since deleted): lifetime page
-- views, minutes, view records, active days and distinct visitors/accounts over the loaded
-- history. Days of the page_daily_metrics date spine without views are not active days.
WITH act AS (
    SELECT page_id,
           arg_max(page_name, day) AS page_name,
           arg_max(group_name, day) AS group_name,
           min(day) AS first_view_day,
           max(day) AS last_view_day,
           count(*) AS count_active_days,
           sum(sum_pageviews) AS sum_pageviews,
           sum(sum_minutes) AS sum_minutes,
           sum(count_pageview_events) AS count_pageview_events
    FROM analytics.page_daily_metrics
    WHERE count_pageview_events > 0
    GROUP BY page_id
),
vis AS (
    SELECT page_id, count(*) AS count_visitors
    FROM analytics.page_first_seen
    GROUP BY page_id
),
acc AS (
    SELECT page_id, count(*) AS count_accounts
    FROM analytics.page_account_first_seen
    GROUP BY page_id
)
SELECT coalesce(p.id, act.page_id) AS page_id,
       coalesce(p.name, act.page_name) AS page_name,
       p.app_id,
       coalesce(p.group_name, act.group_name) AS group_name,
       p.id IS NULL AS is_deleted,
       act.first_view_day,
       act.last_view_day,
       coalesce(act.count_active_days, 0)::BIGINT AS count_active_days,
       coalesce(act.sum_pageviews, 0)::BIGINT AS sum_pageviews,
       coalesce(act.sum_minutes, 0)::BIGINT AS sum_minutes,
       coalesce(vis.count_visitors, 0)::BIGINT AS count_visitors,
       coalesce(acc.count_accounts, 0)::BIGINT AS count_accounts,
       coalesce(act.count_pageview_events, 0)::BIGINT AS count_pageview_events
FROM pendo.pages p
FULL JOIN act ON act.page_id = p.id
LEFT JOIN vis ON vis.page_id = coalesce(p.id, act.page_id)
LEFT JOIN acc ON acc.page_id = coalesce(p.id, act.page_id)
