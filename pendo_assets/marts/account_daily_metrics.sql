-- One row per (day, account): who was active and what they used.
-- Visitors, events and minutes come from `events` (all activity); pages and features are the
-- distinct ones viewed/clicked, with the distinct visitors who viewed/clicked them. Activity
-- without an account (anonymous visitors, visitors with no account) is kept, as the row with
-- account_id '' (NULL and '' alike), so no activity is lost: the day's totals equal the raw ones.
WITH ev AS (
    SELECT day, coalesce(account_id, '') AS account_id,
           any_value(account_name) AS account_name,
           count(DISTINCT visitor_id) AS count_active_visitors,
           sum(num_events) AS sum_events,
           sum(num_minutes) AS sum_minutes,
           count(*) AS count_event_records
    FROM analytics.events
    WHERE day BETWEEN $1 AND $2
    GROUP BY ALL
),
pg AS (
    SELECT day, coalesce(account_id, '') AS account_id,
           any_value(account_name) AS account_name,
           count(DISTINCT page_id) AS count_pages_viewed,
           count(DISTINCT visitor_id) AS count_page_viewing_visitors
    FROM analytics.page_events
    WHERE day BETWEEN $1 AND $2
    GROUP BY ALL
),
ft AS (
    SELECT day, coalesce(account_id, '') AS account_id,
           any_value(account_name) AS account_name,
           count(DISTINCT feature_id) AS count_features_clicked,
           count(DISTINCT visitor_id) AS count_feature_clicking_visitors
    FROM analytics.feature_events
    WHERE day BETWEEN $1 AND $2
    GROUP BY ALL
),
-- Distinct visitors active that day, each counted once whatever their accounts.
whole_day AS (
    SELECT day, count(DISTINCT visitor_id) AS visitors
    FROM analytics.events
    WHERE day BETWEEN $1 AND $2
    GROUP BY day
),
k AS (
    SELECT day, account_id FROM ev
    UNION SELECT day, account_id FROM pg
    UNION SELECT day, account_id FROM ft
)
SELECT k.day,
       k.account_id,
       coalesce(ev.account_name, pg.account_name, ft.account_name) AS account_name,
       coalesce(ev.count_active_visitors, 0)::BIGINT AS count_active_visitors,
       coalesce(ev.sum_events, 0)::BIGINT AS sum_events,
       coalesce(ev.sum_minutes, 0)::BIGINT AS sum_minutes,
       coalesce(pg.count_pages_viewed, 0)::BIGINT AS count_pages_viewed,
       coalesce(ft.count_features_clicked, 0)::BIGINT AS count_features_clicked,
       coalesce(ev.count_event_records, 0)::BIGINT AS count_event_records,
       coalesce(pg.count_page_viewing_visitors, 0)::BIGINT AS count_page_viewing_visitors,
       coalesce(ft.count_feature_clicking_visitors, 0)::BIGINT AS count_feature_clicking_visitors,
       coalesce(ev.sum_minutes / nullif(ev.count_active_visitors, 0), 0)::DOUBLE
           AS avg_daily_minutes_per_visitor,
       coalesce(ev.sum_events / nullif(ev.count_active_visitors, 0), 0)::DOUBLE
           AS avg_daily_events_per_visitor,
       coalesce(100.0 * ev.count_active_visitors / nullif(w.visitors, 0), 0)::DOUBLE
           AS percent_of_daily_visitors
FROM k
LEFT JOIN ev ON ev.day = k.day AND ev.account_id = k.account_id
LEFT JOIN pg ON pg.day = k.day AND pg.account_id = k.account_id
LEFT JOIN ft ON ft.day = k.day AND ft.account_id = k.account_id
LEFT JOIN whole_day w ON w.day = k.day
