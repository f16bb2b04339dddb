-- Webhook outbox: events are written in the transaction that makes them true and sent, at least once,
-- by the webhook sender. An event waits while an earlier event of the same order key (its notification,
-- call or installation) is still pending, so a receiver sees each notification's events in order.
ALTER TABLE webhook_events
    ADD COLUMN order_key       text NOT NULL DEFAULT '',
    ADD COLUMN state           text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'failed')),
    ADD COLUMN attempts        integer NOT NULL DEFAULT 0,
    ADD COLUMN next_attempt_at timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN last_error      text;
DROP INDEX webhook_events_by_app;
CREATE INDEX webhook_events_due ON webhook_events (next_attempt_at) WHERE state = 'pending';
CREATE INDEX webhook_events_order ON webhook_events (app_id, order_key, id) WHERE state = 'pending';
CREATE INDEX webhook_events_failed ON webhook_events (created_at) WHERE state = 'failed';

-- An app whose receiver keeps failing (connection refused, timeouts, 5xx, 429) is paused as a whole,
-- on every node, so a receiver that is down gets one probe per pause instead of every event's retry.
CREATE TABLE webhook_pauses (
    app_id       text PRIMARY KEY REFERENCES apps (id) ON DELETE CASCADE,
    failures     integer NOT NULL,
    paused_until timestamptz NOT NULL
);

-- Statistics: every change of a delivery's status is counted by (app, minute, channel, status, reason).
-- Triggers append the counts of each statement to stats_deltas (no row is shared between writers, so
-- counting takes no lock another transaction waits for); the stats compactor folds them every few
-- seconds into the minute, hour and day tables that GET /v1/stats reads.
CREATE TABLE stats_deltas (
    id      bigserial PRIMARY KEY,
    app_id  text NOT NULL,
    minute  timestamptz NOT NULL,
    channel text NOT NULL,
    status  text NOT NULL,
    reason  text NOT NULL,
    count   bigint NOT NULL
);

CREATE TABLE stats_minute (
    app_id  text NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    t       timestamptz NOT NULL,
    channel text NOT NULL,
    status  text NOT NULL,
    reason  text NOT NULL,   -- '' when the status has none
    count   bigint NOT NULL,
    PRIMARY KEY (app_id, t, channel, status, reason)
);
CREATE TABLE stats_hour (LIKE stats_minute INCLUDING ALL);
ALTER TABLE stats_hour ADD FOREIGN KEY (app_id) REFERENCES apps (id) ON DELETE CASCADE;
CREATE TABLE stats_day (LIKE stats_minute INCLUDING ALL);
ALTER TABLE stats_day ADD FOREIGN KEY (app_id) REFERENCES apps (id) ON DELETE CASCADE;

-- Statuses worth counting and telling: every status a delivery can end in or move to after its end.
CREATE FUNCTION herald_delivery_counted(status text) RETURNS boolean
    LANGUAGE sql IMMUTABLE AS $$ SELECT status <> 'queued' $$;

-- The webhook event type for a delivery that reached a status, or null when that status is not told
-- ('simulated' is told as delivery.sent with its status, so test keys exercise webhooks too).
CREATE FUNCTION herald_delivery_event(status text) RETURNS text
    LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE status
        WHEN 'sent' THEN 'delivery.sent' WHEN 'simulated' THEN 'delivery.sent'
        WHEN 'delivered' THEN 'delivery.delivered' WHEN 'opened' THEN 'delivery.opened'
        WHEN 'failed' THEN 'delivery.failed' WHEN 'expired' THEN 'delivery.expired' END $$;

-- Rows of one statement that reached a counted status: their counts and, for apps with a webhook,
-- their events (in id order, so each notification's events keep the order they happened in). One
-- statement each, no temporary table (that would churn the catalog on every transaction).
CREATE FUNCTION herald_deliveries_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        WITH changed AS (
            SELECT n.id, n.notification_id, n.user_id, n.installation_id, n.channel, n.status, n.reason, nt.app_id
            FROM new_rows n JOIN notifications nt ON nt.id = n.notification_id
            WHERE herald_delivery_counted(n.status)
        ), counted AS (
            INSERT INTO stats_deltas (app_id, minute, channel, status, reason, count)
            SELECT app_id, date_trunc('minute', clock_timestamp()), channel, status,
                   CASE WHEN status IN ('sent', 'delivered', 'opened', 'simulated') THEN '' ELSE coalesce(reason, '') END,
                   count(*)
            FROM changed GROUP BY 1, 2, 3, 4, 5
        )
        INSERT INTO webhook_events (app_id, type, order_key, data, created_at)
        SELECT c.app_id, herald_delivery_event(c.status), c.notification_id,
               jsonb_strip_nulls(jsonb_build_object('notificationId', c.notification_id, 'userId', c.user_id,
                   'installationId', c.installation_id, 'channel', c.channel, 'status', c.status, 'reason', c.reason)),
               clock_timestamp()
        FROM changed c JOIN apps a ON a.id = c.app_id AND a.webhook IS NOT NULL
        WHERE herald_delivery_event(c.status) IS NOT NULL
        ORDER BY c.id;
    ELSE
        WITH changed AS (
            SELECT n.id, n.notification_id, n.user_id, n.installation_id, n.channel, n.status, n.reason, nt.app_id
            FROM new_rows n JOIN old_rows o ON o.id = n.id JOIN notifications nt ON nt.id = n.notification_id
            WHERE herald_delivery_counted(n.status) AND n.status IS DISTINCT FROM o.status
        ), counted AS (
            INSERT INTO stats_deltas (app_id, minute, channel, status, reason, count)
            SELECT app_id, date_trunc('minute', clock_timestamp()), channel, status,
                   CASE WHEN status IN ('sent', 'delivered', 'opened', 'simulated') THEN '' ELSE coalesce(reason, '') END,
                   count(*)
            FROM changed GROUP BY 1, 2, 3, 4, 5
        )
        INSERT INTO webhook_events (app_id, type, order_key, data, created_at)
        SELECT c.app_id, herald_delivery_event(c.status), c.notification_id,
               jsonb_strip_nulls(jsonb_build_object('notificationId', c.notification_id, 'userId', c.user_id,
                   'installationId', c.installation_id, 'channel', c.channel, 'status', c.status, 'reason', c.reason)),
               clock_timestamp()
        FROM changed c JOIN apps a ON a.id = c.app_id AND a.webhook IS NOT NULL
        WHERE herald_delivery_event(c.status) IS NOT NULL
        ORDER BY c.id;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER deliveries_inserted AFTER INSERT ON deliveries REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION herald_deliveries_changed();
CREATE TRIGGER deliveries_updated AFTER UPDATE ON deliveries REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION herald_deliveries_changed();
