-- Webhook lanes: a notification's events keep their order per recipient (notification and user), so a
-- broadcast's events go out in parallel while each recipient's sent -> delivered -> opened stays in
-- order. Events already waiting from before webhooks were sent (calls) get their call's lane, and those
-- older than the 24 h retry window end as failed instead of flooding receivers.
UPDATE webhook_events SET order_key = 'call:' || (data->>'callId') WHERE order_key = '' AND type LIKE 'call.%';
UPDATE webhook_events SET state = 'failed', last_error = 'older than 24 h when webhook sending began'
WHERE state = 'pending' AND created_at < now() - interval '24 hours';

-- The sender claims app by app (apps with a webhook are few), each app's due events in order.
DROP INDEX webhook_events_due;
CREATE INDEX webhook_events_due ON webhook_events (app_id, next_attempt_at) WHERE state = 'pending';

-- Old statistics rows are forgotten by time: without these, each hourly cleanup scanned whole tables.
CREATE INDEX stats_minute_by_time ON stats_minute USING brin (t);
CREATE INDEX stats_hour_by_time ON stats_hour USING brin (t);

-- Counted by the status deliveries ended in: a delivery moving on from a counted status (sent ->
-- delivered -> opened) leaves the old status's count (in the minute it reached it) as it joins the new
-- one, so each delivery counts once, in its latest status.
-- The reason a count is kept under: none for the statuses that have none.
CREATE FUNCTION herald_stats_reason(status text, reason text) RETURNS text
    LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN status IN ('sent', 'delivered', 'opened', 'simulated') THEN '' ELSE coalesce(reason, '') END $$;

CREATE OR REPLACE FUNCTION herald_deliveries_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        WITH changed AS (
            SELECT n.id, n.notification_id, n.user_id, n.installation_id, n.channel, n.status, n.reason, nt.app_id
            FROM new_rows n JOIN notifications nt ON nt.id = n.notification_id
            WHERE herald_delivery_counted(n.status)
        ), counted AS (
            INSERT INTO stats_deltas (app_id, minute, channel, status, reason, count)
            SELECT app_id, date_trunc('minute', clock_timestamp()), channel, status, herald_stats_reason(status, reason),
                   count(*)
            FROM changed GROUP BY 1, 2, 3, 4, 5
        )
        INSERT INTO webhook_events (app_id, type, order_key, data, created_at)
        SELECT c.app_id, herald_delivery_event(c.status), c.notification_id || '/' || c.user_id,
               jsonb_strip_nulls(jsonb_build_object('notificationId', c.notification_id, 'userId', c.user_id,
                   'installationId', c.installation_id, 'channel', c.channel, 'status', c.status, 'reason', c.reason)),
               clock_timestamp()
        FROM changed c JOIN apps a ON a.id = c.app_id AND a.webhook IS NOT NULL
        WHERE herald_delivery_event(c.status) IS NOT NULL
        ORDER BY c.id;
    ELSE
        WITH changed AS (
            SELECT n.id, n.notification_id, n.user_id, n.installation_id, n.channel, n.status, n.reason, nt.app_id,
                   o.status AS old_status, o.reason AS old_reason, o.updated_at AS old_at
            FROM new_rows n JOIN old_rows o ON o.id = n.id JOIN notifications nt ON nt.id = n.notification_id
            WHERE herald_delivery_counted(n.status) AND n.status IS DISTINCT FROM o.status
        ), counted AS (
            INSERT INTO stats_deltas (app_id, minute, channel, status, reason, count)
            SELECT app_id, date_trunc('minute', clock_timestamp()), channel, status, herald_stats_reason(status, reason),
                   count(*)
            FROM changed GROUP BY 1, 2, 3, 4, 5
            UNION ALL
            SELECT app_id, date_trunc('minute', old_at), channel, old_status, herald_stats_reason(old_status, old_reason),
                   -count(*)
            FROM changed WHERE herald_delivery_counted(old_status) GROUP BY 1, 2, 3, 4, 5
        )
        INSERT INTO webhook_events (app_id, type, order_key, data, created_at)
        SELECT c.app_id, herald_delivery_event(c.status), c.notification_id || '/' || c.user_id,
               jsonb_strip_nulls(jsonb_build_object('notificationId', c.notification_id, 'userId', c.user_id,
                   'installationId', c.installation_id, 'channel', c.channel, 'status', c.status, 'reason', c.reason)),
               clock_timestamp()
        FROM changed c JOIN apps a ON a.id = c.app_id AND a.webhook IS NOT NULL
        WHERE herald_delivery_event(c.status) IS NOT NULL
        ORDER BY c.id;
    END IF;
    RETURN NULL;
END $$;

-- call.routed is told once, before call.ended: by whichever comes first of the ring's outcome being
-- recorded and the call ending (a caller who hangs up while APNs is still answering).
ALTER TABLE calls ADD COLUMN routed_told boolean NOT NULL DEFAULT false;
UPDATE calls SET routed_told = true;
