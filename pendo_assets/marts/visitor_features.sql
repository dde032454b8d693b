-- One row per (visitor, feature) the visitor ever clicked in the loaded history.
SELECT visitor_id,
       feature_id,
       arg_max(feature_name, day) AS feature_name,
       min(day) AS first_click_day,
       max(day) AS last_click_day,
       sum(num_events)::BIGINT AS sum_clicks,
       sum(num_minutes)::BIGINT AS sum_minutes,
       count(DISTINCT day)::BIGINT AS count_active_days
FROM analytics.feature_events
GROUP BY visitor_id, feature_id
