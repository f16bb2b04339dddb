-- Herald foundation: deployment settings, apps, their API keys, and registered devices.

-- Deployment-wide values generated once and shared by every node (admin key hash, JWT secret).
CREATE TABLE settings (
    name       text PRIMARY KEY,
    value      text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE apps (
    id          text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9-]{1,39}$'),
    name        text NOT NULL,
    -- gateway and channel settings as sent (secrets included); answered without their secret fields
    apns        jsonb,
    fcm         jsonb,
    email       jsonb,
    webhook     jsonb,
    sync_badges boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- App keys: only the SHA-256 of the key is kept; key_prefix is what listings show.
CREATE TABLE api_keys (
    id         text PRIMARY KEY,
    app_id     text NOT NULL REFERENCES apps (id),
    name       text NOT NULL,
    mode       text NOT NULL CHECK (mode IN ('live', 'test')),
    scopes     text[] NOT NULL,
    key_hash   text NOT NULL UNIQUE,
    key_prefix text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);
CREATE INDEX api_keys_by_app ON api_keys (app_id, created_at, id);

-- One row per app installation. Installation ids are made by the app once per install.
CREATE TABLE devices (
    installation_id       text PRIMARY KEY,
    app_id                text NOT NULL REFERENCES apps (id),
    user_id               text NOT NULL,
    platform              text NOT NULL CHECK (platform IN ('ios', 'android')),
    push_token            text,
    push_token_updated_at timestamptz NOT NULL,
    voip_token            text,
    voip_token_updated_at timestamptz,
    locale                text,
    timezone              text,
    app_version           text,
    tags                  text[] NOT NULL DEFAULT '{}',
    created_at            timestamptz NOT NULL,
    updated_at            timestamptz NOT NULL,
    last_seen_at          timestamptz NOT NULL
);
-- A token belongs to at most one installation. FCM tokens may be up to 4096 characters, longer
-- than a b-tree entry may be, so uniqueness is enforced on their MD5 (lookups compare both).
CREATE UNIQUE INDEX devices_push_token ON devices (md5(push_token)) WHERE push_token IS NOT NULL;
CREATE UNIQUE INDEX devices_voip_token ON devices (md5(voip_token)) WHERE voip_token IS NOT NULL;
CREATE INDEX devices_by_user ON devices (user_id, app_id);
CREATE INDEX devices_by_tag ON devices USING gin (tags);
CREATE INDEX devices_by_last_seen ON devices (last_seen_at);
