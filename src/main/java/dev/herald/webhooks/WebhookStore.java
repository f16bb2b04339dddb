package dev.herald.webhooks;

import io.micronaut.core.annotation.Nullable;
import io.micronaut.data.jdbc.runtime.JdbcOperations;
import io.micronaut.transaction.annotation.Transactional;
import jakarta.inject.Singleton;

import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.Timestamp;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;

/**
 * The webhook outbox in PostgreSQL. Events are appended in the caller's transaction (the one that makes
 * them true); delivery events are appended by the {@code deliveries} triggers (migration V9). The sender
 * claims due events with a lease ({@code FOR UPDATE SKIP LOCKED}), never an event while an earlier
 * event of its order key is still pending, and never an event of a paused app.
 */
@Singleton
public class WebhookStore {

    private final JdbcOperations jdbc;
    private final dev.herald.apps.AppStore apps;

    /**
     * A CTE to append after one named {@code cleared} (columns installation_id, user_id, app_id, platform,
     * reason) that clears dead tokens: a {@code device.unregistered} event for each, for apps with a
     * webhook. Format with the token kind ({@code push} or {@code voip}).
     */
    public static final String UNREGISTERED_EVENTS = """
            , unregistered AS (
                INSERT INTO webhook_events (app_id, type, order_key, data, created_at, next_attempt_at)
                SELECT c.app_id, 'device.unregistered', 'device:' || c.installation_id,
                       jsonb_strip_nulls(jsonb_build_object('installationId', c.installation_id, 'userId', c.user_id,
                           'app', c.app_id, 'platform', c.platform, 'token', '%s', 'reason', c.reason)), now(), now()
                FROM cleared c JOIN apps a ON a.id = c.app_id AND a.webhook IS NOT NULL)
            """;

    WebhookStore(JdbcOperations jdbc, dev.herald.apps.AppStore apps) {
        this.jdbc = jdbc;
        this.apps = apps;
    }

    /** The app as stored now (not cached). */
    java.util.Optional<dev.herald.apps.AppStore.StoredApp> app(String appId) {
        return apps.find(appId);
    }

    /**
     * Appends an event for the app's webhook, in the caller's transaction, when the app has one.
     * {@code orderKey} names its lane (a call, an installation; a delivery event's is its notification
     * and user): events of one lane are sent in the order they were appended.
     */
    public void append(String appId, String type, String orderKey, String dataJson, Instant now) {
        jdbc.prepareStatement("""
                INSERT INTO webhook_events (app_id, type, order_key, data, created_at, next_attempt_at)
                SELECT id, ?, ?, ?::jsonb, ?, ? FROM apps WHERE id = ? AND webhook IS NOT NULL""", ps -> {
            ps.setString(1, type);
            ps.setString(2, orderKey);
            ps.setString(3, dataJson);
            ps.setTimestamp(4, Timestamp.from(now));
            ps.setTimestamp(5, Timestamp.from(now));
            ps.setString(6, appId);
            return ps.executeUpdate();
        });
    }

    /** An event claimed for sending; {@code attempts} counts this one. */
    record Claimed(long id, String appId, String type, String dataJson, Instant createdAt, int attempts) {
    }

    /**
     * Claims due events, oldest first, leasing them for {@code lease}: app by app (the apps with a
     * webhook, not paused), at most {@code room.apply(app)} of each, so one app's backlog or slow
     * receiver never takes another's turn; an event waits while an earlier one of its lane is pending.
     */
    @Transactional
    List<Claimed> claim(Instant now, Duration lease, int limit, java.util.Map<String, Integer> busy, int perApp) {
        return jdbc.prepareStatement("""
                WITH room AS (
                    SELECT a.id AS app_id, ? - coalesce(b.in_flight, 0) AS room
                    FROM apps a LEFT JOIN unnest(?::text[], ?::integer[]) AS b(app_id, in_flight) ON b.app_id = a.id
                    WHERE a.webhook IS NOT NULL
                      AND NOT EXISTS (SELECT 1 FROM webhook_pauses w WHERE w.app_id = a.id AND w.paused_until > ?)
                ), chosen AS (
                    SELECT c.id FROM room r CROSS JOIN LATERAL (
                        SELECT e.id FROM webhook_events e
                        WHERE e.app_id = r.app_id AND e.state = 'pending' AND e.next_attempt_at <= ?
                          AND NOT EXISTS (SELECT 1 FROM webhook_events p WHERE p.state = 'pending'
                                          AND p.app_id = e.app_id AND p.order_key = e.order_key AND p.id < e.id)
                        ORDER BY e.next_attempt_at, e.id LIMIT greatest(r.room, 0) FOR UPDATE SKIP LOCKED) c
                    WHERE r.room > 0 LIMIT ?)
                UPDATE webhook_events e SET next_attempt_at = ?, attempts = e.attempts + 1
                FROM chosen WHERE e.id = chosen.id
                RETURNING e.id, e.app_id, e.type, e.data::text, e.created_at, e.attempts""", ps -> {
            java.sql.Connection c = ps.getConnection();
            ps.setInt(1, perApp);
            ps.setArray(2, c.createArrayOf("text", busy.keySet().toArray()));
            ps.setArray(3, c.createArrayOf("integer", busy.values().toArray()));
            ps.setTimestamp(4, Timestamp.from(now));
            ps.setTimestamp(5, Timestamp.from(now));
            ps.setInt(6, limit);
            ps.setTimestamp(7, Timestamp.from(now.plus(lease)));
            List<Claimed> claimed = new ArrayList<>();
            try (ResultSet rs = ps.executeQuery()) {
                while (rs.next()) {
                    claimed.add(new Claimed(rs.getLong(1), rs.getString(2), rs.getString(3), rs.getString(4),
                            rs.getTimestamp(5).toInstant(), rs.getInt(6)));
                }
            }
            claimed.sort(java.util.Comparator.comparingLong(Claimed::id));
            return claimed;
        });
    }

    /** What became of a claimed event: delivered, to be tried again at {@code retryAt}, or given up. */
    record Outcome(long id, int attempts, boolean delivered, @Nullable Instant retryAt, @Nullable String error) {
    }

    /**
     * Writes outcomes (each only while its claim holds: same attempt count): delivered events are
     * removed, the others get their next attempt or end {@code failed} with the last error.
     */
    @Transactional
    void finish(List<Outcome> outcomes) {
        int n = outcomes.size();
        Long[] ids = new Long[n];
        Integer[] attempts = new Integer[n];
        Boolean[] delivered = new Boolean[n];
        Timestamp[] retryAt = new Timestamp[n];
        String[] errors = new String[n];
        for (int i = 0; i < n; i++) {
            Outcome o = outcomes.get(i);
            ids[i] = o.id();
            attempts[i] = o.attempts();
            delivered[i] = o.delivered();
            retryAt[i] = o.retryAt() == null ? null : Timestamp.from(o.retryAt());
            errors[i] = o.error();
        }
        jdbc.prepareStatement("""
                WITH o AS (SELECT * FROM unnest(?::bigint[], ?::integer[], ?::boolean[], ?::timestamptz[], ?::text[])
                           AS o(id, attempts, delivered, retry_at, error)),
                gone AS (DELETE FROM webhook_events e USING o
                         WHERE e.id = o.id AND e.attempts = o.attempts AND e.state = 'pending' AND o.delivered)
                UPDATE webhook_events e
                SET state = CASE WHEN o.retry_at IS NULL THEN 'failed' ELSE 'pending' END,
                    next_attempt_at = coalesce(o.retry_at, e.next_attempt_at), last_error = o.error
                FROM o WHERE e.id = o.id AND e.attempts = o.attempts AND e.state = 'pending' AND NOT o.delivered""", ps -> {
            Connection c = ps.getConnection();
            ps.setArray(1, c.createArrayOf("bigint", ids));
            ps.setArray(2, c.createArrayOf("integer", attempts));
            ps.setArray(3, c.createArrayOf("boolean", delivered));
            ps.setArray(4, c.createArrayOf("timestamptz", retryAt));
            ps.setArray(5, c.createArrayOf("text", errors));
            return ps.executeUpdate();
        });
    }

    /**
     * Pauses the app's webhook after its receiver failed as a whole (unreachable, 5xx, 429): the pause
     * grows with each failure in a row, as {@code pauseFor} says; answers the pause's end.
     */
    @Transactional
    Instant pause(String appId, Instant now, java.util.function.IntFunction<Duration> pauseFor) {
        int failures = jdbc.prepareStatement("""
                INSERT INTO webhook_pauses (app_id, failures, paused_until) VALUES (?, 1, ?)
                ON CONFLICT (app_id) DO UPDATE SET failures = webhook_pauses.failures + 1
                RETURNING failures""", ps -> {
            ps.setString(1, appId);
            ps.setTimestamp(2, Timestamp.from(now));
            try (ResultSet rs = ps.executeQuery()) {
                rs.next();
                return rs.getInt(1);
            }
        });
        Instant until = now.plus(pauseFor.apply(failures));
        jdbc.prepareStatement("UPDATE webhook_pauses SET paused_until = greatest(paused_until, ?) WHERE app_id = ?", ps -> {
            ps.setTimestamp(1, Timestamp.from(until));
            ps.setString(2, appId);
            return ps.executeUpdate();
        });
        return until;
    }

    /** The apps' receivers answered again: their pauses end. */
    @Transactional
    void resume(Collection<String> appIds) {
        jdbc.prepareStatement("DELETE FROM webhook_pauses WHERE app_id = ANY(?)", ps -> {
            ps.setArray(1, ps.getConnection().createArrayOf("text", appIds.toArray()));
            return ps.executeUpdate();
        });
    }

    /** Forgets events given up before {@code before}; answers how many. */
    @Transactional
    int forgetFailed(Instant before) {
        return jdbc.prepareStatement("DELETE FROM webhook_events WHERE state = 'failed' AND created_at < ?", ps -> {
            ps.setTimestamp(1, Timestamp.from(before));
            return ps.executeUpdate();
        });
    }

    /** Events of the app still waiting to be delivered, and those given up (for the dashboard). */
    @Transactional
    public long[] backlog(String appId) {
        return jdbc.prepareStatement("""
                SELECT count(*) FILTER (WHERE state = 'pending'), count(*) FILTER (WHERE state = 'failed')
                FROM webhook_events WHERE app_id = ?""", ps -> {
            ps.setString(1, appId);
            try (ResultSet rs = ps.executeQuery()) {
                rs.next();
                return new long[] {rs.getLong(1), rs.getLong(2)};
            }
        });
    }
}
