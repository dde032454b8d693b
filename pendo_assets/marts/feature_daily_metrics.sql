-- One row per (day, feature). The days of a feature are a date spine: every feature of
-- `pendo.features` has a row on every day from its creation (its `created_at` as a
-- subscription-local day, the session variable `pendo_timezone`), with zeros on days without
-- clicks; and any feature clicked on a day has that day's row, even a feature deleted since or a
-- click before the feature's creation (tagging is retroactive). First-time visitors (accounts)
-- clicked the feature on this day and on no earlier loaded day: `analytics.feature_first_seen`
-- and `analytics.feature_account_first_seen`, kept up to date incrementally, so this reads one
-- day of events plus one index range.
WITH per AS (
    SELECT day, feature_id,
           any_value(feature_name) AS feature_name,
           any_value(page_id) AS page_id,
           any_value(page_name) AS page_name,
           any_value(group_name) AS group_name,
           sum(num_events) AS sum_clicks,
           sum(num_minutes) AS sum_minutes,
           count(*) AS count_click_events,
           count(DISTINCT visitor_id) AS count_visitors,
           count(DISTINCT account_id) FILTER (WHERE coalesce(account_id, '') <> '') AS count_accounts
    FROM analytics.feature_events
    WHERE day BETWEEN $1 AND $2
    GROUP BY day, feature_id
),
-- Distinct visitors and accounts who clicked any feature that day (each counted once).
whole_day AS (
    SELECT day,
           count(DISTINCT visitor_id) AS visitors,
           count(DISTINCT account_id) FILTER (WHERE coalesce(account_id, '') <> '') AS accounts
    FROM analytics.feature_events
    WHERE day BETWEEN $1 AND $2
    GROUP BY day
),
spine AS (
    SELECT d.day, f.id AS feature_id, f.name AS feature_name, f.page_id, pg.name AS page_name,
           f.group_name
    FROM (SELECT unnest(generate_series($1::DATE, $2::DATE, INTERVAL 1 DAY))::DATE AS day) d
    JOIN pendo.features f
      ON timezone(getvariable('pendo_timezone'), f.created_at)::DATE <= d.day
    LEFT JOIN pendo.pages pg ON pg.id = f.page_id
),
firsts AS (
    SELECT first_day AS day, feature_id, count(*) AS n
    FROM analytics.feature_first_seen
    WHERE first_day BETWEEN $1 AND $2
    GROUP BY first_day, feature_id
),
account_firsts AS (
    SELECT first_day AS day, feature_id, count(*) AS n
    FROM analytics.feature_account_first_seen
    WHERE first_day BETWEEN $1 AND $2
    GROUP BY first_day, feature_id
),
k AS (
    SELECT day, feature_id FROM per
    UNION SELECT day, feature_id FROM spine
),
m AS (
    SELECT k.day,
           k.feature_id,
           coalesce(per.feature_name, s.feature_name) AS feature_name,
           coalesce(per.page_id, s.page_id) AS page_id,
           coalesce(per.page_name, s.page_name) AS page_name,
           coalesce(per.group_name, s.group_name) AS group_name,
           coalesce(per.sum_clicks, 0) AS sum_clicks,
           coalesce(per.sum_minutes, 0) AS sum_minutes,
           coalesce(per.count_click_events, 0) AS count_click_events,
           coalesce(per.count_visitors, 0) AS count_visitors,
           coalesce(per.count_accounts, 0) AS count_accounts,
           coalesce(f.n, 0) AS count_first_time_visitors,
           coalesce(af.n, 0) AS count_first_time_accounts,
           w.visitors AS day_visitors,
           w.accounts AS day_accounts
    FROM k
    LEFT JOIN per ON per.day = k.day AND per.feature_id = k.feature_id
    LEFT JOIN spine s ON s.day = k.day AND s.feature_id = k.feature_id
    LEFT JOIN firsts f ON f.day = k.day AND f.feature_id = k.feature_id
    LEFT JOIN account_firsts af ON af.day = k.day AND af.feature_id = k.feature_id
    LEFT JOIN whole_day w ON w.day = k.day
)
SELECT day,
       feature_id,
       feature_name,
       page_name,
       group_name,
       sum_clicks::BIGINT AS sum_clicks,
       count_visitors::BIGINT AS count_visitors,
       count_accounts::BIGINT AS count_accounts,
       count_first_time_visitors::BIGINT AS count_first_time_visitors,
       (count_visitors - count_first_time_visitors)::BIGINT AS count_returning_visitors,
       coalesce(100.0 * sum_clicks
                / nullif(sum(sum_clicks) OVER (PARTITION BY day), 0), 0)::DOUBLE
           AS percent_of_daily_clicks,
       count_click_events::BIGINT AS count_click_events,
       sum_minutes::BIGINT AS sum_minutes,
       count_first_time_accounts::BIGINT AS count_first_time_accounts,
       (count_accounts - count_first_time_accounts)::BIGINT AS count_returning_accounts,
       coalesce(sum_minutes / nullif(count_visitors, 0), 0)::DOUBLE
           AS avg_daily_minutes_per_visitor,
       coalesce(sum_clicks / nullif(count_visitors, 0), 0)::DOUBLE
           AS avg_daily_clicks_per_visitor,
       coalesce(100.0 * count_visitors / nullif(day_visitors, 0), 0)::DOUBLE
           AS percent_of_daily_visitors,
       coalesce(100.0 * count_accounts / nullif(day_accounts, 0), 0)::DOUBLE
           AS percent_of_daily_accounts,
       coalesce(100.0 * count_visitors
                / nullif(sum(count_visitors) OVER (PARTITION BY day), 0), 0)::DOUBLE
           AS percent_of_daily_feature_visitors,
       coalesce(100.0 * count_accounts
                / nullif(sum(count_accounts) OVER (PARTITION BY day), 0), 0)::DOUBLE
           AS percent_of_daily_feature_accounts,
       page_id
FROM m
