-- One row per (day, visitor). `account_id` is the account the visitor had the most events
-- under that day (ties: the smallest id); a visitor seen under several accounts is one row.
WITH by_account AS (
    SELECT day, visitor_id, account_id,
           any_value(visitor_email) AS visitor_email,
           sum(num_events) AS sum_events,
           sum(num_minutes) AS sum_minutes,
           count(*) AS count_event_records
    FROM analytics.events
    WHERE day BETWEEN $1 AND $2
    GROUP BY day, visitor_id, account_id
),
ev AS (
    SELECT day, visitor_id,
           any_value(visitor_email) AS visitor_email,
           first(account_id ORDER BY sum_events DESC, account_id) AS account_id,
           sum(sum_events) AS sum_events,
           sum(sum_minutes) AS sum_minutes,
           sum(count_event_records) AS count_event_records
    FROM by_account
    GROUP BY day, visitor_id
),
pg AS (
    SELECT day, visitor_id,
           any_value(visitor_email) AS visitor_email,
           first(account_id ORDER BY account_id) AS account_id,
           count(DISTINCT page_id) AS count_pages_viewed
    FROM analytics.page_events
    WHERE day BETWEEN $1 AND $2
    GROUP BY day, visitor_id
),
ft AS (
    SELECT day, visitor_id,
           any_value(visitor_email) AS visitor_email,
           first(account_id ORDER BY account_id) AS account_id,
           count(DISTINCT feature_id) AS count_features_clicked
    FROM analytics.feature_events
    WHERE day BETWEEN $1 AND $2
    GROUP BY day, visitor_id
),
k AS (
    SELECT day, visitor_id FROM ev
    UNION SELECT day, visitor_id FROM pg
    UNION SELECT day, visitor_id FROM ft
)
SELECT k.day,
       k.visitor_id,
       coalesce(ev.visitor_email, pg.visitor_email, ft.visitor_email) AS visitor_email,
       coalesce(ev.account_id, pg.account_id, ft.account_id) AS account_id,
       coalesce(ev.sum_events, 0)::BIGINT AS sum_events,
       coalesce(ev.sum_minutes, 0)::BIGINT AS sum_minutes,
       coalesce(pg.count_pages_viewed, 0)::BIGINT AS count_pages_viewed,
       coalesce(ft.count_features_clicked, 0)::BIGINT AS count_features_clicked,
       coalesce(ev.count_event_records, 0)::BIGINT AS count_event_records
FROM k
LEFT JOIN ev ON ev.day = k.day AND ev.visitor_id = k.visitor_id
LEFT JOIN pg ON pg.day = k.day AND pg.visitor_id = k.visitor_id
LEFT JOIN ft ON ft.day = k.day AND ft.visitor_id = k.visitor_id
