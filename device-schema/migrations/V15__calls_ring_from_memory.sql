-- A call rings from what each node holds in memory (the callee's devices, and whether its callId may have
-- been used), while PostgreSQL decides in parallel. What PostgreSQL changes reaches every node through
-- LISTEN/NOTIFY at commit:
--   herald_devices: [app, user] whose device set lost a device or a token (a device deleted, moved to
--                   another user or app, or a token replaced or cleared); '*' when every device went.
--                   Devices or tokens that are added need no notice: a call that did not know them rings
--                   them once PostgreSQL read them.
--   herald_calls:   [app, callId] of every call stored.
-- Only the transactions that change these notify: the notifying commits are serialized by PostgreSQL.

CREATE FUNCTION herald_device_left() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('herald_devices', json_build_array(OLD.app_id, OLD.user_id)::text);
    RETURN NULL;
END $$;

CREATE TRIGGER devices_left_by_update AFTER UPDATE ON devices FOR EACH ROW
    WHEN (OLD.user_id IS DISTINCT FROM NEW.user_id OR OLD.app_id IS DISTINCT FROM NEW.app_id
          OR OLD.platform IS DISTINCT FROM NEW.platform
          OR (OLD.push_token IS NOT NULL AND OLD.push_token IS DISTINCT FROM NEW.push_token)
          OR (OLD.voip_token IS NOT NULL AND OLD.voip_token IS DISTINCT FROM NEW.voip_token))
    EXECUTE FUNCTION herald_device_left();

CREATE TRIGGER devices_left_by_delete AFTER DELETE ON devices FOR EACH ROW
    EXECUTE FUNCTION herald_device_left();

CREATE FUNCTION herald_devices_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('herald_devices', '*');
    RETURN NULL;
END $$;

CREATE TRIGGER devices_truncated AFTER TRUNCATE ON devices FOR EACH STATEMENT
    EXECUTE FUNCTION herald_devices_truncated();

CREATE FUNCTION herald_call_stored() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('herald_calls', json_build_array(NEW.app_id, NEW.call_id)::text);
    RETURN NULL;
END $$;

CREATE TRIGGER calls_stored AFTER INSERT ON calls FOR EACH ROW
    EXECUTE FUNCTION herald_call_stored();
