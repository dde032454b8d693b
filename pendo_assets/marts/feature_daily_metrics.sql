-- One row per (day, feature). First-time visitors clicked the feature on this day and on no
-- earlier loaded day: `analytics.feature_first_seen` holds each (visitor, feature)'s first
-- day, kept up to date incrementally, so this reads one day of events plus one index range.
WITH per AS (
    SELECT day, feature_id,
           any_value(feature_name) AS feature_name,
           any_value(page_name) AS page_name,
           any_value(group_name) AS group_name,
           sum(num_events) AS sum_clicks,
           count(DISTINCT visitor_id) AS count_visitors,
           count(DISTINCT account_id) FILTER (WHERE coalesce(account_id, '') <> '') AS count_accounts
    FROM analytics.feature_events
    WHERE day BETWEEN $1 AND $2
    GROUP BY day, feature_id
),
firsts AS (
    SELECT first_day AS day, feature_id, count(*) AS n
    FROM analytics.feature_first_seen
    WHERE first_day BETWEEN $1 AND $2
    GROUP BY first_day, feature_id
)
SELECT per.day,
       per.feature_id,
       per.feature_name,
       per.page_name,
       per.group_name,
       per.sum_clicks::BIGINT AS sum_clicks,
       per.count_visitors::BIGINT AS count_visitors,
       per.count_accounts::BIGINT AS count_accounts,
       coalesce(firsts.n, 0)::BIGINT AS count_first_time_visitors,
       (per.count_visitors - coalesce(firsts.n, 0))::BIGINT AS count_returning_visitors,
       (100.0 * per.sum_clicks / nullif(sum(per.sum_clicks) OVER (PARTITION BY per.day), 0))::DOUBLE
           AS percent_of_daily_clicks
FROM per
LEFT JOIN firsts ON firsts.day = per.day AND firsts.feature_id = per.feature_id
