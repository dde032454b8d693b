-- One row per (day, guide): guide interactions by type plus poll answers. Visitors and
-- accounts count anyone with a guide event or a poll answer on the guide that day. The step
-- funnel counts visitors who saw each step (`pendo.guide_steps`, in step order).
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
       (count(*) FILTER (WHERE is_poll))::BIGINT AS count_poll_responses
FROM g
GROUP BY day, guide_id
)
SELECT base.*,
       coalesce(n.count_steps, 0)::BIGINT AS count_steps,
       coalesce(f.first_step, 0)::BIGINT AS count_visitors_first_step,
       coalesce(f.last_step, 0)::BIGINT AS count_visitors_last_step,
       f.step_funnel
FROM base
LEFT JOIN funnel f ON f.day = base.day AND f.guide_id = base.guide_id
LEFT JOIN (SELECT guide_id, count(*) AS count_steps FROM steps GROUP BY guide_id) n
       ON n.guide_id = base.guide_id
