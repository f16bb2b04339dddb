-- Each user's preferences (one document per user id: user ids are one namespace across the apps) and
-- their in-app inbox.

CREATE TABLE preferences (
    user_id    text PRIMARY KEY,
    document   jsonb NOT NULL,   -- as PUT /v1/preferences took it (validated), defaults filled in
    updated_at timestamptz NOT NULL
);

-- One row per notification a user got in their inbox, in their locale. Listing is unread first, then
-- newest; "unread" is read_at IS NULL.
CREATE TABLE inbox_items (
    id              bigserial PRIMARY KEY,
    user_id         text NOT NULL,
    app_id          text NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    notification_id text NOT NULL REFERENCES notifications (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    category        text,
    type            text NOT NULL,
    title           text,
    body            text,
    link            text,
    data            jsonb NOT NULL DEFAULT '{}',
    read_at         timestamptz,
    created_at      timestamptz NOT NULL,
    UNIQUE (notification_id, user_id)
);
CREATE INDEX inbox_by_user ON inbox_items (user_id, (read_at IS NOT NULL), id DESC);
CREATE INDEX inbox_by_user_app ON inbox_items (user_id, app_id, (read_at IS NOT NULL), id DESC);
CREATE INDEX inbox_unread ON inbox_items (user_id, app_id) WHERE read_at IS NULL;
