package dev.herald.notifications;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.herald.api.JsonBodies;
import io.micronaut.data.jdbc.runtime.JdbcOperations;
import io.micronaut.transaction.annotation.Transactional;
import jakarta.inject.Singleton;

import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Timestamp;
import java.sql.Types;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.List;
import java.util.Optional;

/** Notifications and their idempotency keys in PostgreSQL. */
@Singleton
public class NotificationStore {

    /** How long an {@code Idempotency-Key} is remembered. */
    static final Duration IDEMPOTENCY_WINDOW = Duration.ofHours(24);

    private static final String COLUMNS = "id, app_id, test, request, status, recipients, routed, send_at, expires_at, created_at";

    private final JdbcOperations jdbc;
    private final ObjectMapper mapper;

    NotificationStore(JdbcOperations jdbc, JsonBodies bodies) {
        this.jdbc = jdbc;
        this.mapper = bodies.mapper();
    }

    /** A remembered idempotency key: the body's hash and the notification it created. */
    record RememberedKey(byte[] requestHash, String notificationId) {
    }

    /**
     * Claims {@code key} for a new notification, or answers the notification it already stands for.
     * Must run in the accepting transaction: a concurrent request with the same key waits for this one.
     */
    Optional<RememberedKey> rememberKey(String appId, String key, byte[] requestHash, String notificationId,
                                        Instant now) {
        jdbc.prepareStatement("DELETE FROM idempotency_keys WHERE app_id = ? AND key = ? AND created_at < ?", ps -> {
            ps.setString(1, appId);
            ps.setString(2, key);
            ps.setTimestamp(3, Timestamp.from(now.minus(IDEMPOTENCY_WINDOW)));
            return ps.executeUpdate();
        });
        boolean claimed = jdbc.prepareStatement("""
                INSERT INTO idempotency_keys (app_id, key, request_hash, notification_id, created_at)
                VALUES (?, ?, ?, ?, ?) ON CONFLICT (app_id, key) DO NOTHING""", ps -> {
            ps.setString(1, appId);
            ps.setString(2, key);
            ps.setBytes(3, requestHash);
            ps.setString(4, notificationId);
            ps.setTimestamp(5, Timestamp.from(now));
            return ps.executeUpdate() == 1;
        });
        if (claimed) {
            return Optional.empty();
        }
        return Optional.of(jdbc.prepareStatement(
                "SELECT request_hash, notification_id FROM idempotency_keys WHERE app_id = ? AND key = ?", ps -> {
                    ps.setString(1, appId);
                    ps.setString(2, key);
                    try (ResultSet rs = ps.executeQuery()) {
                        rs.next();
                        return new RememberedKey(rs.getBytes(1), rs.getString(2));
                    }
                }));
    }

    void insert(String id, String appId, boolean test, JsonNode request, String status, int recipients,
                boolean routed, Instant sendAt, Instant expiresAt, Instant now) {
        jdbc.prepareStatement("INSERT INTO notifications (" + COLUMNS + ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", ps -> {
            ps.setString(1, id);
            ps.setString(2, appId);
            ps.setBoolean(3, test);
            ps.setObject(4, write(request), Types.OTHER);
            ps.setString(5, status);
            ps.setInt(6, recipients);
            ps.setBoolean(7, routed);
            ps.setTimestamp(8, Timestamp.from(sendAt));
            ps.setTimestamp(9, Timestamp.from(expiresAt));
            ps.setTimestamp(10, Timestamp.from(now));
            return ps.executeUpdate();
        });
    }

    /** A notification to insert with others. */
    record NewNotification(String id, String appId, boolean test, JsonNode request, String status, int recipients,
                           boolean routed, Instant sendAt, Instant expiresAt, Instant createdAt) {
    }

    /** Inserts many notifications in one statement. */
    void insertBatch(List<NewNotification> rows) {
        int n = rows.size();
        String[] ids = new String[n];
        String[] apps = new String[n];
        Boolean[] tests = new Boolean[n];
        String[] requests = new String[n];
        String[] statuses = new String[n];
        Integer[] recipients = new Integer[n];
        Boolean[] routed = new Boolean[n];
        Timestamp[] sendAt = new Timestamp[n];
        Timestamp[] expiresAt = new Timestamp[n];
        Timestamp[] createdAt = new Timestamp[n];
        for (int i = 0; i < n; i++) {
            NewNotification r = rows.get(i);
            ids[i] = r.id();
            apps[i] = r.appId();
            tests[i] = r.test();
            requests[i] = write(r.request());
            statuses[i] = r.status();
            recipients[i] = r.recipients();
            routed[i] = r.routed();
            sendAt[i] = Timestamp.from(r.sendAt());
            expiresAt[i] = Timestamp.from(r.expiresAt());
            createdAt[i] = Timestamp.from(r.createdAt());
        }
        jdbc.prepareStatement("INSERT INTO notifications (" + COLUMNS + ") SELECT t.id, t.app_id, t.test, t.request::jsonb,"
                + " t.status, t.recipients, t.routed, t.send_at, t.expires_at, t.created_at"
                + " FROM unnest(?::text[], ?::text[], ?::boolean[], ?::text[], ?::text[], ?::integer[], ?::boolean[],"
                + " ?::timestamptz[], ?::timestamptz[], ?::timestamptz[])"
                + " AS t(id, app_id, test, request, status, recipients, routed, send_at, expires_at, created_at)", ps -> {
            java.sql.Connection c = ps.getConnection();
            ps.setArray(1, c.createArrayOf("text", ids));
            ps.setArray(2, c.createArrayOf("text", apps));
            ps.setArray(3, c.createArrayOf("boolean", tests));
            ps.setArray(4, c.createArrayOf("text", requests));
            ps.setArray(5, c.createArrayOf("text", statuses));
            ps.setArray(6, c.createArrayOf("integer", recipients));
            ps.setArray(7, c.createArrayOf("boolean", routed));
            ps.setArray(8, c.createArrayOf("timestamptz", sendAt));
            ps.setArray(9, c.createArrayOf("timestamptz", expiresAt));
            ps.setArray(10, c.createArrayOf("timestamptz", createdAt));
            return ps.executeUpdate();
        });
    }

    /** The app's notification, or empty (another app's notification is as good as missing). */
    @Transactional
    public Optional<StoredNotification> find(String appId, String id) {
        return jdbc.prepareStatement("SELECT " + COLUMNS + " FROM notifications WHERE id = ? AND app_id = ?", ps -> {
            ps.setString(1, id);
            ps.setString(2, appId);
            return read(ps).stream().findFirst();
        });
    }

    /** The notifications with these ids (those that still exist). */
    @Transactional
    public List<StoredNotification> findAll(Collection<String> ids) {
        return jdbc.prepareStatement("SELECT " + COLUMNS + " FROM notifications WHERE id = ANY(?)", ps -> {
            ps.setArray(1, ps.getConnection().createArrayOf("text", ids.toArray()));
            return read(ps);
        });
    }

    /** Moves a scheduled notification to {@code status} ({@code routing} or {@code cancelled}); false if it was not scheduled. */
    public boolean leaveScheduled(String id, String status) {
        return jdbc.prepareStatement("UPDATE notifications SET status = ? WHERE id = ? AND status = 'scheduled'", ps -> {
            ps.setString(1, status);
            ps.setString(2, id);
            return ps.executeUpdate() == 1;
        });
    }

    /** Records that every delivery of the notification exists. */
    public void markRouted(String id) {
        jdbc.prepareStatement("UPDATE notifications SET routed = true WHERE id = ?", ps -> {
            ps.setString(1, id);
            return ps.executeUpdate();
        });
    }

    /** Forgets idempotency keys older than the window; answers how many. */
    @Transactional
    public int forgetOldKeys(Instant now) {
        return jdbc.prepareStatement("DELETE FROM idempotency_keys WHERE created_at < ?", ps -> {
            ps.setTimestamp(1, Timestamp.from(now.minus(IDEMPOTENCY_WINDOW)));
            return ps.executeUpdate();
        });
    }

    private List<StoredNotification> read(PreparedStatement ps) throws SQLException {
        List<StoredNotification> out = new ArrayList<>();
        try (ResultSet rs = ps.executeQuery()) {
            while (rs.next()) {
                Instant createdAt = rs.getTimestamp(10).toInstant();
                NotificationRequest request = NotificationRequests.parse(parse(rs.getString(4)), createdAt);
                out.add(new StoredNotification(rs.getString(1), rs.getString(2), rs.getBoolean(3), request,
                        rs.getString(5), rs.getInt(6), rs.getBoolean(7), rs.getTimestamp(8).toInstant(),
                        rs.getTimestamp(9).toInstant(), createdAt));
            }
        }
        return out;
    }

    private String write(JsonNode node) {
        try {
            return mapper.writeValueAsString(node);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }

    private JsonNode parse(String json) {
        try {
            return mapper.readTree(json);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException("notifications row holds JSON PostgreSQL accepted", e);
        }
    }

    static boolean sameHash(byte[] a, byte[] b) {
        return Arrays.equals(a, b);
    }
}
