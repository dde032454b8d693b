-- Folding days into a first-seen table, one named step each, run in order by
-- pendo_assets/marts/first_seen.py inside the mart write's transaction. Placeholders:
-- {first_seen} the first-seen table, {events} the enriched events (a table or a subquery),
-- {who} visitor_id or account_id, {id} the subject's id column, {fingerprint} what sums a day's
-- rows into the ledger, {folded_days} the ledger of folded days; $subject and $days are
-- parameters.

-- step: todo
-- The days being folded.
CREATE OR REPLACE TEMP TABLE _todo AS SELECT unnest($days::DATE[]) AS day;

-- step: fold
-- Earliest day of each pair within the days being folded.
CREATE OR REPLACE TEMP TABLE _fold AS
SELECT {who}, {id}, min(day) AS first_day
FROM {events}
WHERE day IN (SELECT day FROM _todo)
GROUP BY {who}, {id};

-- step: stored
-- Stored pairs the fold can change: those seen again, and those first seen on a day being
-- folded (that day may have lost the pair).
CREATE OR REPLACE TEMP TABLE _old AS
SELECT s.* FROM {first_seen} s WHERE s.first_day IN (SELECT day FROM _todo)
UNION
SELECT s.* FROM {first_seen} s
SEMI JOIN _fold f ON f.{who} = s.{who} AND f.{id} = s.{id};

-- step: lost
-- Pairs whose stored first day is being folded but are no longer on it (a re-loaded day lost
-- rows): their first day is among the other days.
CREATE OR REPLACE TEMP TABLE _lost AS
SELECT o.{who}, o.{id} FROM _old o
LEFT JOIN _fold f ON f.{who} = o.{who} AND f.{id} = o.{id}
WHERE o.first_day IN (SELECT day FROM _todo)
  AND (f.first_day IS NULL OR f.first_day > o.first_day);

-- step: rest
-- The lost pairs' first day on the days not being folded. Rare: when no pair was lost the
-- step `no_rest` runs instead, and the events table is not scanned again.
CREATE OR REPLACE TEMP TABLE _rest AS
SELECT e.{who}, e.{id}, min(e.day) AS first_day
FROM {events} e
SEMI JOIN _lost l ON l.{who} = e.{who} AND l.{id} = e.{id}
WHERE e.day NOT IN (SELECT day FROM _todo)
GROUP BY e.{who}, e.{id};

-- step: no_rest
CREATE OR REPLACE TEMP TABLE _rest AS SELECT {who}, {id}, NULL::DATE AS first_day FROM _lost;

-- step: changes
-- Each pair's old and new first day.
CREATE OR REPLACE TEMP TABLE _changes AS
WITH j AS (
    SELECT coalesce(f.{who}, o.{who}) AS {who},
           coalesce(f.{id}, o.{id}) AS {id},
           o.first_day AS old_day,
           f.first_day AS fold_day
    FROM _fold f
    FULL JOIN _old o ON o.{who} = f.{who} AND o.{id} = f.{id}
)
SELECT j.{who}, j.{id}, j.old_day,
       CASE
           WHEN j.old_day IS NULL THEN j.fold_day
           WHEN j.old_day NOT IN (SELECT day FROM _todo) THEN least(j.fold_day, j.old_day)
           WHEN j.fold_day <= j.old_day THEN j.fold_day
           ELSE least(j.fold_day, r.first_day)
       END AS new_day
FROM j
LEFT JOIN _rest r ON r.{who} = j.{who} AND r.{id} = j.{id};

-- step: unchanged
DELETE FROM _changes WHERE old_day IS NOT DISTINCT FROM new_day;

-- step: replace_moved
DELETE FROM {first_seen} s USING _changes c
WHERE c.{who} = s.{who} AND c.{id} = s.{id};

-- step: insert_moved
INSERT INTO {first_seen} SELECT {who}, {id}, new_day FROM _changes WHERE new_day IS NOT NULL;

-- step: forget_folded
DELETE FROM {folded_days} WHERE subject = $subject AND day IN (SELECT day FROM _todo);

-- step: remember_folded
-- Each folded day's fingerprint, so a day re-loaded later is folded again.
INSERT INTO {folded_days}
SELECT $subject, day, count(*), {fingerprint}
FROM {events} WHERE day IN (SELECT day FROM _todo) GROUP BY day;
