-- One row per (day, page). First-time visitors viewed the page on this day and on no earlier
-- loaded day (`analytics.page_first_seen`, kept up to date incrementally).
WITH per AS (
    SELECT day, page_id,
           any_value(page_name) AS page_name,
           any_value(group_name) AS group_name,
           sum(num_events) AS sum_pageviews,
           sum(num_minutes) AS sum_minutes,
           count(DISTINCT visitor_id) AS count_visitors,
           count(DISTINCT account_id) FILTER (WHERE coalesce(account_id, '') <> '') AS count_accounts
    FROM analytics.page_events
    WHERE day BETWEEN $1 AND $2
    GROUP BY day, page_id
),
firsts AS (
    SELECT first_day AS day, page_id, count(*) AS n
    FROM analytics.page_first_seen
    WHERE first_day BETWEEN $1 AND $2
    GROUP BY first_day, page_id
)
SELECT per.day,
       per.page_id,
       per.page_name,
       per.group_name,
       per.sum_pageviews::BIGINT AS sum_pageviews,
       per.sum_minutes::BIGINT AS sum_minutes,
       per.count_visitors::BIGINT AS count_visitors,
       per.count_accounts::BIGINT AS count_accounts,
       coalesce(firsts.n, 0)::BIGINT AS count_first_time_visitors,
       (per.count_visitors - coalesce(firsts.n, 0))::BIGINT AS count_returning_visitors,
       (100.0 * per.sum_pageviews
            / nullif(sum(per.sum_pageviews) OVER (PARTITION BY per.day), 0))::DOUBLE
           AS percent_of_daily_pageviews
FROM per
LEFT JOIN firsts ON firsts.day = per.day AND firsts.page_id = per.page_id
