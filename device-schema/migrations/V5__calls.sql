-- Incoming calls: rung at once (no queue), ended by DELETE or by their ring time running out.
-- One row per (app, callId): posting the same callId again answers this call instead of ringing twice.

CREATE TABLE calls (
    app_id          text NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    call_id         text NOT NULL,
    test            boolean NOT NULL,      -- rung with an hk_test_ key: every route ends 'simulated'
    callee          text NOT NULL,
    caller_id       text NOT NULL,
    caller_name     text,
    video           boolean NOT NULL,
    ring_seconds    integer NOT NULL CHECK (ring_seconds BETWEEN 5 AND 120),
    created_at      timestamptz NOT NULL,
    ring_until      timestamptz NOT NULL,
    -- set once, by whichever comes first: DELETE (answered|declined|cancelled) or the sweep (timeout)
    ended_at        timestamptz,
    end_reason      text CHECK (end_reason IN ('answered', 'declined', 'cancelled', 'timeout')),
    -- the call.missed notification a timeout created (exactly once: the sweep that ends the call makes it)
    missed_notification_id text,
    PRIMARY KEY (app_id, call_id)
);
-- the sweep looks only at calls still ringing
CREATE INDEX calls_ringing ON calls (ring_until) WHERE ended_at IS NULL;
CREATE INDEX calls_by_age ON calls (created_at);

-- One row per route of a call: a device (VoIP push on iOS, FCM data message on Android), or the callee
-- without installation_id when there is no device. The token is the one the call rang, so call.ended
-- reaches exactly the devices that rang.
CREATE TABLE call_routes (
    app_id          text NOT NULL,
    call_id         text NOT NULL,
    seq             integer NOT NULL,
    installation_id text,
    platform        text,
    channel         text NOT NULL CHECK (channel IN ('live', 'voip', 'push')),
    token           text,
    status          text NOT NULL,         -- sending|sent|failed|suppressed|simulated
    reason          text,
    end_status      text,                  -- the call.ended message: same statuses; null until the call ends
    end_reason      text,
    updated_at      timestamptz NOT NULL,
    PRIMARY KEY (app_id, call_id, seq),
    FOREIGN KEY (app_id, call_id) REFERENCES calls (app_id, call_id) ON DELETE CASCADE
);

-- Events for the app's webhook (call.routed, call.ended, and later the delivery events), written in the
-- transaction that makes them true; the webhook sender reads them in id order.
CREATE TABLE webhook_events (
    id         bigserial PRIMARY KEY,
    app_id     text NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    type       text NOT NULL,
    data       jsonb NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE INDEX webhook_events_by_app ON webhook_events (app_id, id);
