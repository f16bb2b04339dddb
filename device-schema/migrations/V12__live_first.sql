-- A routing job for a large user target sends its live events to the users present when it starts,
-- before their chunks are stored. Each such user's inbox item id is drawn first and kept here with the
-- time the event carried, so that the chunk stores the item under the id the stream showed, and a job
-- taken over by another node (after a crash) shows the same ids again. Deleted with the job.
ALTER TABLE jobs
    ADD COLUMN live_users text[],
    ADD COLUMN live_items bigint[],
    ADD COLUMN live_at    timestamptz;
