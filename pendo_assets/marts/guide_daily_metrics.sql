-- One row per (day, guide): guide interactions by type plus poll answers. Visitors and
-- accounts count anyone with a guide event or a poll answer on the guide that day.
WITH g AS (
    SELECT day, guide_id, guide_name, visitor_id, account_id, type, FALSE AS is_poll
    FROM analytics.guide_events
    WHERE day BETWEEN $1 AND $2
    UNION ALL
    SELECT day, guide_id, guide_name, visitor_id, account_id, NULL AS type, TRUE AS is_poll
    FROM analytics.poll_events
    WHERE day BETWEEN $1 AND $2
)
SELECT day,
       guide_id,
       any_value(guide_name) AS guide_name,
       count(DISTINCT visitor_id)::BIGINT AS count_visitors,
       (count(DISTINCT account_id) FILTER (WHERE coalesce(account_id, '') <> ''))::BIGINT
           AS count_accounts,
       (count(*) FILTER (WHERE type = 'guideSeen'))::BIGINT AS count_guide_seen,
       (count(*) FILTER (WHERE type = 'guideAdvanced'))::BIGINT AS count_guide_advanced,
       (count(*) FILTER (WHERE type = 'guideDismissed'))::BIGINT AS count_guide_dismissed,
       (count(*) FILTER (WHERE type = 'guideSnoozed'))::BIGINT AS count_guide_snoozed,
       (count(*) FILTER (WHERE type = 'guideTimeout'))::BIGINT AS count_guide_timeout,
       (count(*) FILTER (WHERE is_poll))::BIGINT AS count_poll_responses
FROM g
GROUP BY day, guide_id
