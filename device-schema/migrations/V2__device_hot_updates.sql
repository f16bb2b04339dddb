-- A re-registration changes last_seen_at every time; a b-tree index on it made every such update a
-- non-HOT update touching all of the table's indexes. A BRIN index is a summarizing index, which
-- PostgreSQL 16+ keeps out of the way of HOT updates, and it is all the hourly silent-device sweep needs.
DROP INDEX devices_by_last_seen;
CREATE INDEX devices_by_last_seen ON devices USING brin (last_seen_at);

-- GIN's fast-update pending list makes a few inserts pay for flushing everybody's entries at once
-- (latency spikes on registrations); insert into the tree directly instead.
ALTER INDEX devices_by_tag SET (fastupdate = off);
