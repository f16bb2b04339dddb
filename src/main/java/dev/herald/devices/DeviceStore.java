package dev.herald.devices;

import io.micronaut.data.jdbc.runtime.JdbcOperations;
import io.micronaut.transaction.annotation.Transactional;
import jakarta.inject.Singleton;

import java.sql.Array;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Timestamp;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;

/**
 * Registered devices in PostgreSQL. A registration is one transaction: a token held by another
 * installation is taken from it, then the installation is inserted or updated (moving it to the
 * caller if another user had it).
 */
@Singleton
public class DeviceStore {

    private static final String COLUMNS = """
            user_id, installation_id, app_id, platform, push_token, voip_token IS NOT NULL, locale, timezone,
            app_version, tags, created_at, updated_at, last_seen_at""";

    private final JdbcOperations jdbc;
    private final Clock clock;

    DeviceStore(JdbcOperations jdbc, Clock clock) {
        this.jdbc = jdbc;
        this.clock = clock;
    }

    /** The outcome of a registration: the device, and whether the installation was new. */
    public record Registered(Device device, boolean created) {
    }

    @Transactional
    public Registered register(String userId, String installationId, DeviceRegistration registration) {
        Timestamp now = Timestamp.from(clock.instant());
        takeToken("push_token", "push_token_updated_at", registration.pushToken(), installationId, now);
        if (registration.voipToken() != null) {
            takeToken("voip_token", "voip_token_updated_at", registration.voipToken(), installationId, now);
        }
        return jdbc.prepareStatement("""
                INSERT INTO devices AS d (installation_id, app_id, user_id, platform, push_token, push_token_updated_at,
                                          voip_token, voip_token_updated_at, locale, timezone, app_version, tags,
                                          created_at, updated_at, last_seen_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (installation_id) DO UPDATE SET
                    app_id = excluded.app_id,
                    user_id = excluded.user_id,
                    platform = excluded.platform,
                    push_token = excluded.push_token,
                    push_token_updated_at = CASE WHEN d.push_token IS DISTINCT FROM excluded.push_token
                                                 THEN excluded.push_token_updated_at ELSE d.push_token_updated_at END,
                    voip_token = excluded.voip_token,
                    voip_token_updated_at = CASE WHEN d.voip_token IS DISTINCT FROM excluded.voip_token
                                                 THEN excluded.voip_token_updated_at ELSE d.voip_token_updated_at END,
                    locale = excluded.locale,
                    timezone = excluded.timezone,
                    app_version = excluded.app_version,
                    tags = excluded.tags,
                    updated_at = excluded.updated_at,
                    last_seen_at = excluded.last_seen_at
                RETURNING (xmax = 0),\s""" + COLUMNS, ps -> {
            ps.setString(1, installationId);
            ps.setString(2, registration.app());
            ps.setString(3, userId);
            ps.setString(4, registration.platform().wire());
            ps.setString(5, registration.pushToken());
            ps.setTimestamp(6, now);
            ps.setString(7, registration.voipToken());
            ps.setTimestamp(8, registration.voipToken() == null ? null : now);
            ps.setString(9, registration.locale());
            ps.setString(10, registration.timezone());
            ps.setString(11, registration.appVersion());
            ps.setArray(12, ps.getConnection().createArrayOf("text", registration.tags().toArray()));
            ps.setTimestamp(13, now);
            ps.setTimestamp(14, now);
            ps.setTimestamp(15, now);
            try (ResultSet rs = ps.executeQuery()) {
                rs.next();
                return new Registered(device(rs, 2), rs.getBoolean(1));
            }
        });
    }

    /** Takes {@code token} away from any other installation holding it (a token identifies one install). */
    private void takeToken(String column, String updatedColumn, String token, String installationId, Timestamp now) {
        jdbc.prepareStatement("UPDATE devices SET " + column + " = NULL, " + updatedColumn + " = ?"
                + " WHERE md5(" + column + ") = md5(?) AND " + column + " = ? AND installation_id <> ?", ps -> {
            ps.setTimestamp(1, now);
            ps.setString(2, token);
            ps.setString(3, token);
            ps.setString(4, installationId);
            return ps.executeUpdate();
        });
    }

    /** The user's devices ordered by installation id, after {@code after} (keyset paging). */
    @Transactional
    public List<Device> listForUser(String userId, String after, int limit) {
        return jdbc.prepareStatement("SELECT " + COLUMNS + " FROM devices WHERE user_id = ? AND installation_id > ?"
                + " ORDER BY installation_id LIMIT ?", ps -> {
            ps.setString(1, userId);
            ps.setString(2, after == null ? "" : after);
            ps.setInt(3, limit);
            return devices(ps);
        });
    }

    @Transactional
    public Optional<Device> find(String userId, String installationId) {
        return jdbc.prepareStatement("SELECT " + COLUMNS + " FROM devices WHERE user_id = ? AND installation_id = ?",
                ps -> {
                    ps.setString(1, userId);
                    ps.setString(2, installationId);
                    return devices(ps).stream().findFirst();
                });
    }

    /** Deletes the user's installation; false when the user has no such installation. */
    @Transactional
    public boolean delete(String userId, String installationId) {
        return jdbc.prepareStatement("DELETE FROM devices WHERE user_id = ? AND installation_id = ?", ps -> {
            ps.setString(1, userId);
            ps.setString(2, installationId);
            return ps.executeUpdate() > 0;
        });
    }

    /** Deletes up to {@code batch} devices not seen for {@code silence}; answers how many. */
    @Transactional
    public int deleteSilent(Duration silence, int batch) {
        return jdbc.prepareStatement("""
                DELETE FROM devices WHERE installation_id IN (
                    SELECT installation_id FROM devices WHERE last_seen_at < ? ORDER BY last_seen_at LIMIT ?
                    FOR UPDATE SKIP LOCKED)""", ps -> {
            ps.setTimestamp(1, Timestamp.from(clock.instant().minus(silence)));
            ps.setInt(2, batch);
            return ps.executeUpdate();
        });
    }

    private static List<Device> devices(PreparedStatement ps) throws SQLException {
        List<Device> out = new ArrayList<>();
        try (ResultSet rs = ps.executeQuery()) {
            while (rs.next()) {
                out.add(device(rs, 1));
            }
        }
        return out;
    }

    private static Device device(ResultSet rs, int first) throws SQLException {
        int i = first;
        String userId = rs.getString(i++);
        String installationId = rs.getString(i++);
        String app = rs.getString(i++);
        String platform = rs.getString(i++);
        String pushToken = rs.getString(i++);
        boolean voip = rs.getBoolean(i++);
        String locale = rs.getString(i++);
        String timezone = rs.getString(i++);
        String appVersion = rs.getString(i++);
        Array tags = rs.getArray(i++);
        Instant createdAt = rs.getTimestamp(i++).toInstant();
        Instant updatedAt = rs.getTimestamp(i++).toInstant();
        Instant lastSeenAt = rs.getTimestamp(i).toInstant();
        return new Device(userId, installationId, app, platform, Device.suffix(pushToken), voip, locale, timezone,
                appVersion, Arrays.stream((Object[]) tags.getArray()).map(String.class::cast).toList(),
                createdAt, updatedAt, lastSeenAt);
    }
}
