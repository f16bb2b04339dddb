-- Notifications, their routing jobs and their deliveries. A 202 means the notification and its work
-- (a routing job, or for small targets the deliveries themselves) committed in one transaction.

CREATE TABLE notifications (
    id          text PRIMARY KEY,
    app_id      text NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    test        boolean NOT NULL,      -- sent with an hk_test_ key: every push ends 'simulated'
    request     jsonb NOT NULL,        -- the body as accepted
    status      text NOT NULL CHECK (status IN ('scheduled', 'routing', 'cancelled')),
    recipients  integer NOT NULL,
    routed      boolean NOT NULL DEFAULT false,  -- every delivery exists (status 'done' once none is queued)
    send_at     timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    created_at  timestamptz NOT NULL
);
CREATE INDEX notifications_by_app ON notifications (app_id, created_at);

-- Same key and same body within 24 h: the first answer again; other body: 409. Scoped to the app.
CREATE TABLE idempotency_keys (
    app_id          text NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    key             text NOT NULL,
    request_hash    bytea NOT NULL,
    -- the key is claimed before its notification is inserted, in the same transaction
    notification_id text NOT NULL REFERENCES notifications (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    created_at      timestamptz NOT NULL,
    PRIMARY KEY (app_id, key)
);
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);

-- Routing work too large (or too late) to do while accepting: claimed with FOR UPDATE SKIP LOCKED;
-- a claim moves run_at forward (a lease), so a node that dies leaves the job to another one.
-- cursor: the last installation id routed, so a large fan-out commits and starts sending in chunks.
CREATE TABLE jobs (
    id              bigserial PRIMARY KEY,
    notification_id text NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    run_at          timestamptz NOT NULL,
    cursor          text NOT NULL DEFAULT '',
    attempts        integer NOT NULL DEFAULT 0
);
CREATE INDEX jobs_due ON jobs (run_at);
CREATE INDEX jobs_by_notification ON jobs (notification_id);

-- One row per step taken or not taken for each recipient. A fan-out writes each push's row once, with
-- its outcome; pushes routed while accepting, and pushes to retry, are 'queued' rows due at
-- next_attempt_at (a claim moves it forward by a lease). APNs' apns-id is derived from
-- (notification, installation), so a push replayed after a crash carries the same id.
CREATE TABLE deliveries (
    id              bigserial PRIMARY KEY,
    notification_id text NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    user_id         text NOT NULL,
    installation_id text,
    channel         text NOT NULL CHECK (channel IN ('live', 'push', 'inApp', 'email')),
    status          text NOT NULL CHECK (status IN ('queued', 'sent', 'delivered', 'opened', 'failed',
                                                    'expired', 'suppressed', 'simulated')),
    reason          text,
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz,
    updated_at      timestamptz NOT NULL
);
CREATE INDEX deliveries_by_notification ON deliveries (notification_id, id);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'queued';
