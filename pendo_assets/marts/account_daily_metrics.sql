-- One row per (day, account): who was active and what they used.
-- Visitors, events and minutes come from `events` (all activity); pages and features are the
-- distinct ones viewed/clicked. Rows with an empty account id are left out.
WITH ev AS (
    SELECT day, account_id,
           any_value(account_name) AS account_name,
           count(DISTINCT visitor_id) AS count_active_visitors,
           sum(num_events) AS sum_events,
           sum(num_minutes) AS sum_minutes
    FROM analytics.events
    WHERE day BETWEEN $1 AND $2 AND coalesce(account_id, '') <> ''
    GROUP BY day, account_id
),
pg AS (
    SELECT day, account_id,
           any_value(account_name) AS account_name,
           count(DISTINCT page_id) AS count_pages_viewed
    FROM analytics.page_events
    WHERE day BETWEEN $1 AND $2 AND coalesce(account_id, '') <> ''
    GROUP BY day, account_id
),
ft AS (
    SELECT day, account_id,
           any_value(account_name) AS account_name,
           count(DISTINCT feature_id) AS count_features_clicked
    FROM analytics.feature_events
    WHERE day BETWEEN $1 AND $2 AND coalesce(account_id, '') <> ''
    GROUP BY day, account_id
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
       coalesce(ft.count_features_clicked, 0)::BIGINT AS count_features_clicked
FROM k
LEFT JOIN ev ON ev.day = k.day AND ev.account_id = k.account_id
LEFT JOIN pg ON pg.day = k.day AND pg.account_id = k.account_id
LEFT JOIN ft ON ft.day = k.day AND ft.account_id = k.account_id
