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
