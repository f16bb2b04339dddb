-- Re-registrations are the most frequent write Herald takes; make them cheap.

-- A b-tree index on last_seen_at made every re-registration a non-HOT update touching all of the
-- table's indexes. A BRIN index is a summarizing index, which PostgreSQL 16+ keeps out of the way of
-- HOT updates, and it is all the hourly silent-device sweep needs.
DROP INDEX devices_by_last_seen;
CREATE INDEX devices_by_last_seen ON devices USING brin (last_seen_at);

-- Room on every page for the new version of a row, so that an update can stay on its page (HOT).
ALTER TABLE devices SET (fillfactor = 80);

-- Most devices carry no tag: keep them out of the tag index entirely (queries by tag add the same
-- predicate), and insert into the tree directly rather than through GIN's pending list, whose
-- flushes made a few registrations pay for everybody's entries at once.
DROP INDEX devices_by_tag;
CREATE INDEX devices_by_tag ON devices USING gin (tags) WITH (fastupdate = off) WHERE cardinality(tags) > 0;
