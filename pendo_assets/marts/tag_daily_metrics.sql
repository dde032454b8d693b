-- One row per (day, {tag}): page_daily_metrics and feature_daily_metrics both come from this
-- template, `{{tag}}` and the other names filled in by `models.TAG_DAYS`. The days of a {tag}
-- are a date spine: every {tag} of `{tags}` has a row on every day from its creation (its
-- `created_at` as a subscription-local day, the session variable `pendo_timezone`), with zeros
-- on days without activity; and any {tag} with activity on a day has that day's row, even one
-- deleted since or activity before its creation (tagging is retroactive). First-time visitors
-- (accounts) were there on this day and on no earlier loaded day: `analytics.{tag}_first_seen`
-- and `analytics.{tag}_account_first_seen`, kept up to date incrementally, so this reads one
-- day of events plus one index range.
WITH per AS (
    SELECT day, {tag}_id,
           any_value({tag}_name) AS {tag}_name,{per_columns}
           any_value(group_name) AS group_name,
           sum(num_events) AS {sum},
           sum(num_minutes) AS sum_minutes,
           count(*) AS {records},
           count(DISTINCT visitor_id) AS count_visitors,
           count(DISTINCT account_id) FILTER (WHERE coalesce(account_id, '') <> '') AS count_accounts
    FROM analytics.{tag}_events
    WHERE day BETWEEN $1 AND $2
    GROUP BY day, {tag}_id
),
-- Distinct visitors and accounts with any {tag} activity that day (each counted once).
whole_day AS (
    SELECT day,
           count(DISTINCT visitor_id) AS visitors,
           count(DISTINCT account_id) FILTER (WHERE coalesce(account_id, '') <> '') AS accounts
    FROM analytics.{tag}_events
    WHERE day BETWEEN $1 AND $2
    GROUP BY day
),
spine AS (
    SELECT d.day, p.id AS {tag}_id, p.name AS {tag}_name, p.group_name{spine_columns}
    FROM (SELECT unnest(generate_series($1::DATE, $2::DATE, INTERVAL 1 DAY))::DATE AS day) d
    JOIN {tags} p
      ON timezone(getvariable('pendo_timezone'), p.created_at)::DATE <= d.day{spine_join}
),
firsts AS (
    SELECT first_day AS day, {tag}_id, count(*) AS n
    FROM analytics.{tag}_first_seen
    WHERE first_day BETWEEN $1 AND $2
    GROUP BY first_day, {tag}_id
),
account_firsts AS (
    SELECT first_day AS day, {tag}_id, count(*) AS n
    FROM analytics.{tag}_account_first_seen
    WHERE first_day BETWEEN $1 AND $2
    GROUP BY first_day, {tag}_id
),
k AS (
    SELECT day, {tag}_id FROM per
    UNION SELECT day, {tag}_id FROM spine
),
m AS (
    SELECT k.day,
           k.{tag}_id,
           coalesce(per.{tag}_name, s.{tag}_name) AS {tag}_name,{m_columns}
           coalesce(per.group_name, s.group_name) AS group_name,
           coalesce(per.{sum}, 0) AS {sum},
           coalesce(per.sum_minutes, 0) AS sum_minutes,
           coalesce(per.{records}, 0) AS {records},
           coalesce(per.count_visitors, 0) AS count_visitors,
           coalesce(per.count_accounts, 0) AS count_accounts,
           coalesce(f.n, 0) AS count_first_time_visitors,
           coalesce(af.n, 0) AS count_first_time_accounts,
           w.visitors AS day_visitors,
           w.accounts AS day_accounts
    FROM k
    LEFT JOIN per ON per.day = k.day AND per.{tag}_id = k.{tag}_id
    LEFT JOIN spine s ON s.day = k.day AND s.{tag}_id = k.{tag}_id
    LEFT JOIN firsts f ON f.day = k.day AND f.{tag}_id = k.{tag}_id
    LEFT JOIN account_firsts af ON af.day = k.day AND af.{tag}_id = k.{tag}_id
    LEFT JOIN whole_day w ON w.day = k.day
)
SELECT day,
       {tag}_id,
       {tag}_name,{out_columns}
       group_name,
       {sum}::BIGINT AS {sum},
       sum_minutes::BIGINT AS sum_minutes,
       count_visitors::BIGINT AS count_visitors,
       count_accounts::BIGINT AS count_accounts,
       count_first_time_visitors::BIGINT AS count_first_time_visitors,
       (count_visitors - count_first_time_visitors)::BIGINT AS count_returning_visitors,
       coalesce(100.0 * {sum}
                / nullif(sum({sum}) OVER (PARTITION BY day), 0), 0)::DOUBLE
           AS {share},
       {records}::BIGINT AS {records},
       count_first_time_accounts::BIGINT AS count_first_time_accounts,
       (count_accounts - count_first_time_accounts)::BIGINT AS count_returning_accounts,
       coalesce(sum_minutes / nullif(count_visitors, 0), 0)::DOUBLE
           AS avg_daily_minutes_per_visitor,
       coalesce({sum} / nullif(count_visitors, 0), 0)::DOUBLE
           AS {per_visitor},
       coalesce(100.0 * count_visitors / nullif(day_visitors, 0), 0)::DOUBLE
           AS percent_of_daily_visitors,
       coalesce(100.0 * count_accounts / nullif(day_accounts, 0), 0)::DOUBLE
           AS percent_of_daily_accounts,
       coalesce(100.0 * count_visitors
                / nullif(sum(count_visitors) OVER (PARTITION BY day), 0), 0)::DOUBLE
           AS percent_of_daily_{tag}_visitors,
       coalesce(100.0 * count_accounts
                / nullif(sum(count_accounts) OVER (PARTITION BY day), 0), 0)::DOUBLE
           AS percent_of_daily_{tag}_accounts
FROM m
