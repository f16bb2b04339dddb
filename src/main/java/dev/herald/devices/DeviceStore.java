package dev.herald.devices;

import io.micronaut.data.jdbc.runtime.JdbcOperations;
import io.micronaut.transaction.annotation.Transactional;
import jakarta.inject.Singleton;

import java.sql.Array;
import java.sql.Connection;
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
import java.util.Collection;
import java.util.HashSet;
import java.util.Set;
import java.util.HashMap;
import java.util.Map;
import java.util.Objects;

/**
 * Registered devices in PostgreSQL. Registrations are stored in batches of one transaction each: a
 * token held by another installation is taken from it, then each installation is inserted or
 * updated (moving it to the caller if another user had it).
 */
@Singleton
public class DeviceStore {

    private static final String COLUMNS = """
            user_id, installation_id, app_id, platform, push_token, voip_token IS NOT NULL, locale, timezone,
            app_version, tags, created_at, updated_at, last_seen_at""";

    /** What a registration changes on an installation that exists. */
    private static final String UPSERT_SET = """
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
            """;

    /** Inserts or updates every installation of a batch, answering {@code (created, COLUMNS...)} per row. */
    private static final String UPSERT = """
            INSERT INTO devices AS d (installation_id, app_id, user_id, platform, push_token, push_token_updated_at,
                                      voip_token, voip_token_updated_at, locale, timezone, app_version, tags,
                                      created_at, updated_at, last_seen_at)
            SELECT t.installation_id, t.app_id, t.user_id, t.platform, t.push_token, ?,
                   t.voip_token, CASE WHEN t.voip_token IS NULL THEN NULL ELSE ?::timestamptz END,
                   t.locale, t.timezone, t.app_version, string_to_array(t.tags, ','), ?, ?, ?
            FROM unnest(?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[],
                        ?::text[], ?::text[])
                 AS t(installation_id, app_id, user_id, platform, push_token, voip_token, locale, timezone,
                      app_version, tags)
            ON CONFLICT (installation_id) DO UPDATE SET""" + UPSERT_SET + """
            RETURNING (xmax = 0),\s""" + COLUMNS;

    private final JdbcOperations jdbc;
    private final Clock clock;

    DeviceStore(JdbcOperations jdbc, Clock clock) {
        this.jdbc = jdbc;
        this.clock = clock;
    }

    /** The outcome of a registration: the device, and whether the installation was new. */
    public record Registered(Device device, boolean created) {
    }

    /** One registration of a batch. */
    public record Registration(String userId, String installationId, DeviceRegistration body) {
    }

    /**
     * Registers a batch in one transaction: tokens are taken from other installations, then every
     * installation is inserted or updated. The two or three statements go out as one multi-statement
     * query (usually one round trip, plus the commit's). The transaction is what makes them all or
     * nothing: pgjdbc may send a Sync between them once they are prepared on the server, and in
     * autocommit that would commit the token updates alone. The batch must not name an installation,
     * a push token or a VoIP token twice. Answers in the batch's order.
     */
    @Transactional
    public List<Registered> registerBatch(List<Registration> batch) {
        Timestamp now = Timestamp.from(clock.instant());
        int n = batch.size();
        String[] installations = new String[n];
        String[] apps = new String[n];
        String[] users = new String[n];
        String[] platforms = new String[n];
        String[] pushTokens = new String[n];
        String[] voipTokens = new String[n];
        String[] locales = new String[n];
        String[] timezones = new String[n];
        String[] versions = new String[n];
        String[] tags = new String[n];
        for (int i = 0; i < n; i++) {
            Registration r = batch.get(i);
            installations[i] = r.installationId();
            apps[i] = r.body().app();
            users[i] = r.userId();
            platforms[i] = r.body().platform().wire();
            pushTokens[i] = r.body().pushToken();
            voipTokens[i] = r.body().voipToken();
            locales[i] = r.body().locale();
            timezones[i] = r.body().timezone();
            versions[i] = r.body().appVersion();
            tags[i] = String.join(",", r.body().tags()); // tags never hold a comma (device-registration schema)
        }
        boolean voip = Arrays.stream(voipTokens).anyMatch(Objects::nonNull);
        String sql = TAKE_PUSH_TOKENS + (voip ? TAKE_VOIP_TOKENS : "") + UPSERT;
        Map<String, Registered> byInstallation = jdbc.prepareStatement(sql, ps -> {
            Connection c = ps.getConnection();
            Array installationArray = c.createArrayOf("text", installations);
            int p = 1;
            ps.setTimestamp(p++, now);
            ps.setArray(p++, c.createArrayOf("text", pushTokens));
            ps.setArray(p++, installationArray);
            if (voip) {
                ps.setTimestamp(p++, now);
                ps.setArray(p++, c.createArrayOf("text", voipTokens));
                ps.setArray(p++, installationArray);
            }
            for (int i = 0; i < 5; i++) {
                ps.setTimestamp(p++, now);
            }
            String[][] columns = {installations, apps, users, platforms, pushTokens, voipTokens, locales, timezones,
                    versions, tags};
            for (String[] column : columns) {
                ps.setArray(p++, column == installations ? installationArray : c.createArrayOf("text", column));
            }
            boolean isResultSet = ps.execute();
            while (!isResultSet) { // the token updates' counts come first, then the upsert's rows
                if (ps.getUpdateCount() == -1) {
                    throw new IllegalStateException("The registration upsert returned no rows");
                }
                isResultSet = ps.getMoreResults();
            }
            Map<String, Registered> out = new HashMap<>(n * 2);
            try (ResultSet rs = ps.getResultSet()) {
                while (rs.next()) {
                    Device device = device(rs, 2);
                    out.put(device.installationId(), new Registered(device, rs.getBoolean(1)));
                }
            }
            return out;
        });
        List<Registered> answers = new ArrayList<>(n);
        for (String installation : installations) {
            answers.add(byInstallation.get(installation));
        }
        return answers;
    }

    /** Takes a token from any other installation holding it: parameters time, tokens, installations. */
    private static String takeTokens(String column, String updatedColumn) {
        return "UPDATE devices d SET " + column + " = NULL, " + updatedColumn + " = ?"
                + " FROM unnest(?::text[], ?::text[]) AS t(token, installation_id)"
                + " WHERE t.token IS NOT NULL AND md5(d." + column + ") = md5(t.token) AND d." + column + " = t.token"
                + " AND d.installation_id <> t.installation_id;\n";
    }

    private static final String TAKE_PUSH_TOKENS = takeTokens("push_token", "push_token_updated_at");
    private static final String TAKE_VOIP_TOKENS = takeTokens("voip_token", "voip_token_updated_at");

    /** Which installations of {@code appIds} exist, for a batch to refuse unknown apps up front. */
    @Transactional
    public Set<String> existingApps(Collection<String> appIds) {
        return jdbc.prepareStatement("SELECT id FROM apps WHERE id = ANY(?)", ps -> {
            ps.setArray(1, ps.getConnection().createArrayOf("text", appIds.toArray()));
            Set<String> found = new HashSet<>();
            try (ResultSet rs = ps.executeQuery()) {
                while (rs.next()) {
                    found.add(rs.getString(1));
                }
            }
            return found;
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
