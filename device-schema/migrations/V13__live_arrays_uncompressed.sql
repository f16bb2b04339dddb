-- A fan-out appends each slice of users shown live to these arrays, one transaction per slice.
-- Compressed (the default for large values), every append re-compressed the whole array: 10 to 16 ms
-- a slice at 10,000 users, growing with each. Stored out of line but uncompressed, an append costs
-- about 1 ms; the arrays live only as long as their job.
ALTER TABLE jobs
    ALTER COLUMN live_users SET STORAGE EXTERNAL,
    ALTER COLUMN live_items SET STORAGE EXTERNAL;
