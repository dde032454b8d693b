-- One row per (day, page). The days of a page are a date spine: every page of `pendo.pages` has
-- a row on every day from its creation (its `created_at` as a subscription-local day, the
-- session variable `pendo_timezone`), with zeros on days without views; and any page with views
-- on a day has that day's row, even a page deleted since or a view before the page's creation
-- (tagging is retroactive). First-time visitors (accounts) viewed the page on this day and on no
-- earlier loaded day: `analytics.page_first_seen` and `analytics.page_account_first_seen`, kept
-- up to date incrementally, so this reads one day of events plus one index range.
WITH per AS (
    SELECT day, page_id,
           any_value(page_name) AS page_name,
           any_value(group_name) AS group_name,
           sum(num_events) AS sum_pageviews,
           sum(num_minutes) AS sum_minutes,
           count(*) AS count_pageview_events,
           count(DISTINCT visitor_id) AS count_visitors,
           count(DISTINCT account_id) FILTER (WHERE coalesce(account_id, '') <> '') AS count_accounts
    FROM analytics.page_events
    WHERE day BETWEEN $1 AND $2
    GROUP BY day, page_id
),
-- Distinct visitors and accounts who viewed any page that day (each counted once).
whole_day AS (
    SELECT day,
           count(DISTINCT visitor_id) AS visitors,
           count(DISTINCT account_id) FILTER (WHERE coalesce(account_id, '') <> '') AS accounts
    FROM analytics.page_events
    WHERE day BETWEEN $1 AND $2
    GROUP BY day
),
spine AS (
    SELECT d.day, p.id AS page_id, p.name AS page_name, p.group_name
    FROM (SELECT unnest(generate_series($1::DATE, $2::DATE, INTERVAL 1 DAY))::DATE AS day) d
    JOIN pendo.pages p
      ON timezone(getvariable('pendo_timezone'), p.created_at)::DATE <= d.day
),
firsts AS (
    SELECT first_day AS day, page_id, count(*) AS n
    FROM analytics.page_first_seen
    WHERE first_day BETWEEN $1 AND $2
    GROUP BY first_day, page_id
),
account_firsts AS (
    SELECT first_day AS day, page_id, count(*) AS n
    FROM analytics.page_account_first_seen
    WHERE first_day BETWEEN $1 AND $2
    GROUP BY first_day, page_id
),
k AS (
    SELECT day, page_id FROM per
    UNION SELECT day, page_id FROM spine
),
m AS (
    SELECT k.day,
           k.page_id,
           coalesce(per.page_name, s.page_name) AS page_name,
           coalesce(per.group_name, s.group_name) AS group_name,
           coalesce(per.sum_pageviews, 0) AS sum_pageviews,
           coalesce(per.sum_minutes, 0) AS sum_minutes,
           coalesce(per.count_pageview_events, 0) AS count_pageview_events,
           coalesce(per.count_visitors, 0) AS count_visitors,
           coalesce(per.count_accounts, 0) AS count_accounts,
           coalesce(f.n, 0) AS count_first_time_visitors,
           coalesce(af.n, 0) AS count_first_time_accounts,
           w.visitors AS day_visitors,
           w.accounts AS day_accounts
    FROM k
    LEFT JOIN per ON per.day = k.day AND per.page_id = k.page_id
    LEFT JOIN spine s ON s.day = k.day AND s.page_id = k.page_id
    LEFT JOIN firsts f ON f.day = k.day AND f.page_id = k.page_id
    LEFT JOIN account_firsts af ON af.day = k.day AND af.page_id = k.page_id
    LEFT JOIN whole_day w ON w.day = k.day
)
SELECT day,
       page_id,
       page_name,
       group_name,
       sum_pageviews::BIGINT AS sum_pageviews,
       sum_minutes::BIGINT AS sum_minutes,
       count_visitors::BIGINT AS count_visitors,
       count_accounts::BIGINT AS count_accounts,
       count_first_time_visitors::BIGINT AS count_first_time_visitors,
       (count_visitors - count_first_time_visitors)::BIGINT AS count_returning_visitors,
       coalesce(100.0 * sum_pageviews
                / nullif(sum(sum_pageviews) OVER (PARTITION BY day), 0), 0)::DOUBLE
           AS percent_of_daily_pageviews,
       count_pageview_events::BIGINT AS count_pageview_events,
       count_first_time_accounts::BIGINT AS count_first_time_accounts,
       (count_accounts - count_first_time_accounts)::BIGINT AS count_returning_accounts,
       coalesce(sum_minutes / nullif(count_visitors, 0), 0)::DOUBLE
           AS avg_daily_minutes_per_visitor,
       coalesce(sum_pageviews / nullif(count_visitors, 0), 0)::DOUBLE
           AS avg_daily_pageviews_per_visitor,
       coalesce(100.0 * count_visitors / nullif(day_visitors, 0), 0)::DOUBLE
           AS percent_of_daily_visitors,
       coalesce(100.0 * count_accounts / nullif(day_accounts, 0), 0)::DOUBLE
           AS percent_of_daily_accounts,
       coalesce(100.0 * count_visitors
                / nullif(sum(count_visitors) OVER (PARTITION BY day), 0), 0)::DOUBLE
           AS percent_of_daily_page_visitors,
       coalesce(100.0 * count_accounts
                / nullif(sum(count_accounts) OVER (PARTITION BY day), 0), 0)::DOUBLE
           AS percent_of_daily_page_accounts
FROM m
