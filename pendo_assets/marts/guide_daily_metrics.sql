-- One row per (day, guide): guide interactions by type plus poll answers. Visitors and
-- accounts count anyone with a guide event or a poll answer on the guide that day; first-time
-- ones had none on an earlier loaded day (`analytics.guide_first_seen`,
-- `analytics.guide_account_first_seen`). Each type in GUIDE_EVENT_TYPES has its count and its
-- distinct visitors; events of any other type are counted in `count_guide_other`. The step
-- funnel counts visitors who saw each step (`pendo.guide_steps`, in step order). The days of a
-- guide are a date spine: every guide of `pendo.guides` has a row on every day from its
-- creation (a subscription-local day, the session variable `pendo_timezone`), with zeros on
-- days without events; any guide with events on a day (deleted since, or not) has that row.
WITH g AS (
    SELECT day, guide_id, guide_name, visitor_id, account_id, type, FALSE AS is_poll
    FROM analytics.guide_events
    WHERE day BETWEEN $1 AND $2
    UNION ALL
    SELECT day, guide_id, guide_name, visitor_id, account_id, NULL AS type, TRUE AS is_poll
    FROM analytics.poll_events
    WHERE day BETWEEN $1 AND $2
),
steps AS (
    SELECT guide_id, step_id, step_number, name,
           count(*) OVER (PARTITION BY guide_id) AS count_steps
    FROM pendo.guide_steps
),
seen AS (
    SELECT e.day, e.guide_id, s.step_number, any_value(s.step_id) AS step_id,
           any_value(s.name) AS step_name, any_value(s.count_steps) AS count_steps,
           count(DISTINCT e.visitor_id) AS visitors
    FROM analytics.guide_events e
    JOIN steps s ON s.step_id = e.guide_step_id AND s.guide_id = e.guide_id
    WHERE e.day BETWEEN $1 AND $2 AND e.type = 'guideSeen'
    GROUP BY e.day, e.guide_id, s.step_number
),
funnel AS (
    SELECT day, guide_id,
           coalesce(max(visitors) FILTER (WHERE step_number = 1), 0) AS first_step,
           coalesce(max(visitors) FILTER (WHERE step_number = count_steps), 0) AS last_step,
           to_json(list({'step_number': step_number, 'step_id': step_id,
                         'step_name': step_name, 'count_visitors_seen': visitors}
                        ORDER BY step_number)) AS step_funnel
    FROM seen
    GROUP BY day, guide_id
),
base AS (
SELECT day,
       guide_id,
       any_value(guide_name) AS guide_name,
       count(DISTINCT visitor_id)::BIGINT AS count_visitors,
       (count(DISTINCT account_id) FILTER (WHERE coalesce(account_id, '') <> ''))::BIGINT
           AS count_accounts,
       /* per guide event type: (count(*) FILTER (WHERE type = '{type}'))::BIGINT AS {col} */,
       (count(*) FILTER (WHERE is_poll))::BIGINT AS count_poll_responses,
       (count(*) FILTER (WHERE NOT is_poll AND (type IS NULL OR type NOT IN {known_guide_types})))::BIGINT
           AS count_guide_other,
       (count(*) FILTER (WHERE NOT is_poll))::BIGINT AS count_guide_events,
       /* per guide event type: (count(DISTINCT visitor_id) FILTER (WHERE type = '{type}'))::BIGINT AS {visitors_col} */,
       (count(DISTINCT visitor_id) FILTER (
            WHERE NOT is_poll AND (type IS NULL OR type NOT IN {known_guide_types})))::BIGINT
           AS count_visitors_other
FROM g
GROUP BY day, guide_id
),
-- Distinct visitors and accounts with any guide event or poll answer that day.
whole_day AS (
    SELECT day,
           count(DISTINCT visitor_id) AS visitors,
           count(DISTINCT account_id) FILTER (WHERE coalesce(account_id, '') <> '') AS accounts
    FROM g
    GROUP BY day
),
spine AS (
    SELECT d.day, gd.id AS guide_id, gd.name AS guide_name
    FROM (SELECT unnest(generate_series($1::DATE, $2::DATE, INTERVAL 1 DAY))::DATE AS day) d
    JOIN pendo.guides gd
      ON timezone(getvariable('pendo_timezone'), gd.created_at)::DATE <= d.day
),
firsts AS (
    SELECT first_day AS day, guide_id, count(*) AS n
    FROM analytics.guide_first_seen
    WHERE first_day BETWEEN $1 AND $2
    GROUP BY first_day, guide_id
),
account_firsts AS (
    SELECT first_day AS day, guide_id, count(*) AS n
    FROM analytics.guide_account_first_seen
    WHERE first_day BETWEEN $1 AND $2
    GROUP BY first_day, guide_id
),
k AS (
    SELECT day, guide_id FROM base
    UNION SELECT day, guide_id FROM spine
)
SELECT k.day,
       k.guide_id,
       coalesce(base.guide_name, s.guide_name) AS guide_name,
       coalesce(base.count_visitors, 0)::BIGINT AS count_visitors,
       coalesce(base.count_accounts, 0)::BIGINT AS count_accounts,
       /* per guide event type: coalesce(base.{col}, 0)::BIGINT AS {col} */,
       coalesce(base.count_poll_responses, 0)::BIGINT AS count_poll_responses,
       coalesce(n.count_steps, 0)::BIGINT AS count_steps,
       coalesce(f.first_step, 0)::BIGINT AS count_visitors_first_step,
       coalesce(f.last_step, 0)::BIGINT AS count_visitors_last_step,
       f.step_funnel,
       coalesce(base.count_guide_other, 0)::BIGINT AS count_guide_other,
       coalesce(base.count_guide_events, 0)::BIGINT AS count_guide_events,
       coalesce(ft.n, 0)::BIGINT AS count_first_time_visitors,
       (coalesce(base.count_visitors, 0) - coalesce(ft.n, 0))::BIGINT AS count_returning_visitors,
       coalesce(aft.n, 0)::BIGINT AS count_first_time_accounts,
       (coalesce(base.count_accounts, 0) - coalesce(aft.n, 0))::BIGINT AS count_returning_accounts,
       /* per guide event type: coalesce(base.{visitors_col}, 0)::BIGINT AS {visitors_col} */,
       coalesce(base.count_visitors_other, 0)::BIGINT AS count_visitors_other,
       coalesce(100.0 * base.count_visitors / nullif(w.visitors, 0), 0)::DOUBLE
           AS percent_of_daily_visitors,
       coalesce(100.0 * base.count_accounts / nullif(w.accounts, 0), 0)::DOUBLE
           AS percent_of_daily_accounts
FROM k
LEFT JOIN base ON base.day = k.day AND base.guide_id = k.guide_id
LEFT JOIN spine s ON s.day = k.day AND s.guide_id = k.guide_id
LEFT JOIN funnel f ON f.day = k.day AND f.guide_id = k.guide_id
LEFT JOIN (SELECT guide_id, count(*) AS count_steps FROM steps GROUP BY guide_id) n
       ON n.guide_id = k.guide_id
LEFT JOIN firsts ft ON ft.day = k.day AND ft.guide_id = k.guide_id
LEFT JOIN account_firsts aft ON aft.day = k.day AND aft.guide_id = k.guide_id
LEFT JOIN whole_day w ON w.day = k.day
