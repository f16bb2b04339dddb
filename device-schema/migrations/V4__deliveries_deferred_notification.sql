-- A batch of notifications routed while accepting inserts its deliveries before the notifications
-- themselves (their recipient counts come from the deliveries), in one transaction: the check that a
-- delivery's notification exists waits for the commit.
ALTER TABLE deliveries ALTER CONSTRAINT deliveries_notification_id_fkey DEFERRABLE INITIALLY DEFERRED;
