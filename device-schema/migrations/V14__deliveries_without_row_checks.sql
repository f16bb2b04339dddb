-- A delivery's notification is no longer checked row by row: the foreign key's check (a lookup of the
-- notification, FOR KEY SHARE) ran once for every delivery inserted, a thousand times for a thousand
-- deliveries of one fan-out chunk, about a fifth of what inserting them cost. Every delivery is
-- inserted in the transaction that inserts its notification, or in one that holds the notification's
-- routing job (which goes with the notification). Deleting notifications still deletes their
-- deliveries, once per statement (and truncating them truncates the deliveries).
ALTER TABLE deliveries DROP CONSTRAINT deliveries_notification_id_fkey;

CREATE FUNCTION herald_notifications_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM deliveries WHERE notification_id IN (SELECT id FROM gone);
    RETURN NULL;
END $$;

CREATE TRIGGER notifications_deleted AFTER DELETE ON notifications REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION herald_notifications_deleted();

CREATE FUNCTION herald_notifications_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE deliveries;
    RETURN NULL;
END $$;

CREATE TRIGGER notifications_truncated AFTER TRUNCATE ON notifications
    FOR EACH STATEMENT EXECUTE FUNCTION herald_notifications_truncated();
