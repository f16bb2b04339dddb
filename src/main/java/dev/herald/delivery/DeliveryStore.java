package dev.herald.delivery;

import dev.herald.devices.Platform;
import io.micronaut.data.jdbc.runtime.JdbcOperations;
import io.micronaut.transaction.annotation.Transactional;
import jakarta.inject.Singleton;

import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Timestamp;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * Deliveries and routing jobs in PostgreSQL. Queued push deliveries and routing jobs are queues:
 * claimed with {@code FOR UPDATE SKIP LOCKED}, a claim moving their due time forward by a lease, so
 * several nodes share them and a node that dies leaves its claims to the others once the lease ends.
 * Methods without {@code @Transactional} join the caller's transaction.
 */
@Singleton
public class DeliveryStore {

    private static final String INSERT = """
            INSERT INTO deliveries (notification_id, user_id, installation_id, channel, status, reason, attempts,
                                    next_attempt_at, updated_at)
            """;
    /** A device with a token is queued for a push now; one whose token was cleared fails at once. */
    private static final String PUSH_ROW = """
            SELECT ?, d.user_id, d.installation_id, 'push',
                   CASE WHEN d.push_token IS NULL THEN 'failed' ELSE 'queued' END,
                   CASE WHEN d.push_token IS NULL THEN 'no_token' END, 0,
                   CASE WHEN d.push_token IS NULL THEN NULL ELSE ?::timestamptz END, ?
            FROM devices d
            """;

    private final JdbcOperations jdbc;

    DeliveryStore(JdbcOperations jdbc) {
        this.jdbc = jdbc;
    }

    // ------------------------------------------------------------------ routing

    /** Queues a push for each of these installations of the app; answers how many matched. */
    public int enqueueDevices(String notificationId, String appId, List<String> installationIds, Instant now) {
        return jdbc.prepareStatement(INSERT + PUSH_ROW + " WHERE d.app_id = ? AND d.installation_id = ANY(?)", ps -> {
            bindPushRow(ps, notificationId, now);
            ps.setString(4, appId);
            ps.setArray(5, ps.getConnection().createArrayOf("text", installationIds.toArray()));
            return ps.executeUpdate();
        });
    }

    /**
     * Queues a push for the next {@code limit} devices of the app (in installation id order after
     * {@code after}) carrying one of the tags; answers the last installation id routed, or empty when
     * none was left.
     */
    public Optional<String> enqueueTagged(String notificationId, String appId, List<String> tags, String after,
                                          int limit, Instant now) {
        return jdbc.prepareStatement(INSERT + PUSH_ROW + """
                WHERE d.installation_id IN (
                    SELECT installation_id FROM devices
                    WHERE app_id = ? AND installation_id > ? AND cardinality(tags) > 0 AND tags && ?::text[]
                    ORDER BY installation_id LIMIT ?)
                RETURNING installation_id""", ps -> {
            bindPushRow(ps, notificationId, now);
            ps.setString(4, appId);
            ps.setString(5, after);
            ps.setArray(6, ps.getConnection().createArrayOf("text", tags.toArray()));
            ps.setInt(7, limit);
            String last = null;
            try (ResultSet rs = ps.executeQuery()) {
                while (rs.next()) {
                    String id = rs.getString(1);
                    if (last == null || id.compareTo(last) > 0) {
                        last = id;
                    }
                }
            }
            return Optional.ofNullable(last);
        });
    }

    /**
     * Routes users: a queued push for each of their devices of the app when {@code push}, else nothing
     * for push; {@code suppressed / no_device} for a user without one; and {@code suppressed} with
     * {@code otherReason} for each channel in {@code otherChannels} (those not built yet).
     */
    public void enqueueUsers(String notificationId, String appId, List<String> userIds, boolean push,
                             List<String> otherChannels, String otherReason, Instant now) {
        if (push) {
            jdbc.prepareStatement(INSERT + PUSH_ROW + " WHERE d.app_id = ? AND d.user_id = ANY(?)", ps -> {
                bindPushRow(ps, notificationId, now);
                ps.setString(4, appId);
                ps.setArray(5, ps.getConnection().createArrayOf("text", userIds.toArray()));
                return ps.executeUpdate();
            });
            jdbc.prepareStatement(INSERT + """
                    SELECT ?, u.id, NULL, 'push', 'suppressed', 'no_device', 0, NULL, ?
                    FROM unnest(?::text[]) AS u(id)
                    WHERE NOT EXISTS (SELECT 1 FROM devices d WHERE d.user_id = u.id AND d.app_id = ?)""", ps -> {
                ps.setString(1, notificationId);
                ps.setTimestamp(2, Timestamp.from(now));
                ps.setArray(3, ps.getConnection().createArrayOf("text", userIds.toArray()));
                ps.setString(4, appId);
                return ps.executeUpdate();
            });
        }
        if (!otherChannels.isEmpty()) {
            jdbc.prepareStatement(INSERT + """
                    SELECT ?, u.id, NULL, c.channel, 'suppressed', ?, 0, NULL, ?
                    FROM unnest(?::text[]) AS u(id) CROSS JOIN unnest(?::text[]) AS c(channel)""", ps -> {
                ps.setString(1, notificationId);
                ps.setString(2, otherReason);
                ps.setTimestamp(3, Timestamp.from(now));
                ps.setArray(4, ps.getConnection().createArrayOf("text", userIds.toArray()));
                ps.setArray(5, ps.getConnection().createArrayOf("text", otherChannels.toArray()));
                return ps.executeUpdate();
            });
        }
    }

    /** How many of these installations the app has. */
    public int countDevices(String appId, List<String> installationIds) {
        return count("SELECT count(*) FROM devices WHERE app_id = ? AND installation_id = ANY(?)", appId, installationIds);
    }

    /** How many of the app's devices carry one of the tags. */
    public int countTagged(String appId, List<String> tags) {
        return count("SELECT count(*) FROM devices WHERE app_id = ? AND cardinality(tags) > 0 AND tags && ?::text[]",
                appId, tags);
    }

    private int count(String sql, String appId, List<String> values) {
        return jdbc.prepareStatement(sql, ps -> {
            ps.setString(1, appId);
            ps.setArray(2, ps.getConnection().createArrayOf("text", values.toArray()));
            try (ResultSet rs = ps.executeQuery()) {
                rs.next();
                return rs.getInt(1);
            }
        });
    }

    private static void bindPushRow(java.sql.PreparedStatement ps, String notificationId, Instant now)
            throws SQLException {
        ps.setString(1, notificationId);
        ps.setTimestamp(2, Timestamp.from(now));
        ps.setTimestamp(3, Timestamp.from(now));
    }

    // ------------------------------------------------------------------ routing jobs

    /** A routing job: route {@code notificationId}'s recipients after {@code cursor}. */
    public record Job(long id, String notificationId, String cursor) {
    }

    public void insertJob(String notificationId, Instant runAt) {
        jdbc.prepareStatement("INSERT INTO jobs (notification_id, run_at) VALUES (?, ?)", ps -> {
            ps.setString(1, notificationId);
            ps.setTimestamp(2, Timestamp.from(runAt));
            return ps.executeUpdate();
        });
    }

    /** Claims up to {@code limit} due jobs until {@code now + lease}. */
    @Transactional
    public List<Job> claimJobs(Instant now, Duration lease, int limit) {
        return jdbc.prepareStatement("""
                UPDATE jobs j SET run_at = ?, attempts = j.attempts + 1
                WHERE j.id IN (SELECT id FROM jobs WHERE run_at <= ? ORDER BY run_at LIMIT ? FOR UPDATE SKIP LOCKED)
                RETURNING j.id, j.notification_id, j.cursor""", ps -> {
            ps.setTimestamp(1, Timestamp.from(now.plus(lease)));
            ps.setTimestamp(2, Timestamp.from(now));
            ps.setInt(3, limit);
            List<Job> jobs = new ArrayList<>();
            try (ResultSet rs = ps.executeQuery()) {
                while (rs.next()) {
                    jobs.add(new Job(rs.getLong(1), rs.getString(2), rs.getString(3)));
                }
            }
            return jobs;
        });
    }

    /** Records progress and renews the lease; false when the job is gone (the notification was cancelled). */
    public boolean advanceJob(long jobId, String cursor, Instant leaseUntil) {
        return jdbc.prepareStatement("UPDATE jobs SET cursor = ?, run_at = ? WHERE id = ?", ps -> {
            ps.setString(1, cursor);
            ps.setTimestamp(2, Timestamp.from(leaseUntil));
            ps.setLong(3, jobId);
            return ps.executeUpdate() == 1;
        });
    }

    public boolean deleteJob(long jobId) {
        return jdbc.prepareStatement("DELETE FROM jobs WHERE id = ?", ps -> {
            ps.setLong(1, jobId);
            return ps.executeUpdate() == 1;
        });
    }

    public void deleteJobsOf(String notificationId) {
        jdbc.prepareStatement("DELETE FROM jobs WHERE notification_id = ?", ps -> {
            ps.setString(1, notificationId);
            return ps.executeUpdate();
        });
    }

    // ------------------------------------------------------------------ queued pushes

    /** A claimed push: the delivery, and its device as it is now (token null when cleared or gone). */
    public record ClaimedPush(long id, String notificationId, String userId, String installationId, int attempts,
                              Platform platform, String token, String locale) {
    }

    /**
     * Claims up to {@code limit} queued pushes that are due, until {@code now + lease}. The device is
     * read as it is now, and only while it still belongs to the same user and app: a token cleared or
     * moved since routing is never pushed to.
     */
    @Transactional
    public List<ClaimedPush> claimDue(Instant now, Duration lease, int limit) {
        return jdbc.prepareStatement("""
                WITH claimed AS (
                    UPDATE deliveries d SET next_attempt_at = ?, attempts = d.attempts + 1
                    WHERE d.id IN (SELECT id FROM deliveries WHERE status = 'queued' AND next_attempt_at <= ?
                                   ORDER BY next_attempt_at LIMIT ? FOR UPDATE SKIP LOCKED)
                    RETURNING d.id, d.notification_id, d.user_id, d.installation_id, d.attempts)
                SELECT c.id, c.notification_id, c.user_id, c.installation_id, c.attempts, v.platform, v.push_token, v.locale
                FROM claimed c
                JOIN notifications n ON n.id = c.notification_id
                LEFT JOIN devices v ON v.installation_id = c.installation_id AND v.user_id = c.user_id
                                   AND v.app_id = n.app_id""", ps -> {
            ps.setTimestamp(1, Timestamp.from(now.plus(lease)));
            ps.setTimestamp(2, Timestamp.from(now));
            ps.setInt(3, limit);
            List<ClaimedPush> claimed = new ArrayList<>();
            try (ResultSet rs = ps.executeQuery()) {
                while (rs.next()) {
                    String platform = rs.getString(6);
                    claimed.add(new ClaimedPush(rs.getLong(1), rs.getString(2), rs.getString(3), rs.getString(4),
                            rs.getInt(5), platform == null ? null : Platform.fromWire(platform), rs.getString(7),
                            rs.getString(8)));
                }
            }
            return claimed;
        });
    }

    /** A delivery's new state: final, or {@code queued} again until {@code nextAttemptAt}. */
    public record Finished(long id, String status, String reason, Instant nextAttemptAt) {
    }

    /** Writes outcomes in one statement. */
    @Transactional
    public void finish(List<Finished> outcomes, Instant now) {
        int n = outcomes.size();
        Long[] ids = new Long[n];
        String[] statuses = new String[n];
        String[] reasons = new String[n];
        Timestamp[] next = new Timestamp[n];
        for (int i = 0; i < n; i++) {
            Finished f = outcomes.get(i);
            ids[i] = f.id();
            statuses[i] = f.status();
            reasons[i] = f.reason();
            next[i] = f.nextAttemptAt() == null ? null : Timestamp.from(f.nextAttemptAt());
        }
        jdbc.prepareStatement("""
                UPDATE deliveries d SET status = u.status, reason = u.reason, next_attempt_at = u.next_at, updated_at = ?
                FROM unnest(?::bigint[], ?::text[], ?::text[], ?::timestamptz[]) AS u(id, status, reason, next_at)
                WHERE d.id = u.id""", ps -> {
            Connection c = ps.getConnection();
            ps.setTimestamp(1, Timestamp.from(now));
            ps.setArray(2, c.createArrayOf("bigint", ids));
            ps.setArray(3, c.createArrayOf("text", statuses));
            ps.setArray(4, c.createArrayOf("text", reasons));
            ps.setArray(5, c.createArrayOf("timestamptz", next));
            return ps.executeUpdate();
        });
    }

    /** A token a gateway called dead, as of {@code invalidSince}. */
    public record DeadToken(String installationId, String token, Instant invalidSince) {
    }

    /**
     * Clears each token from its device unless it changed or was registered again after the gateway's
     * invalidation time (compare-and-clear); answers the installations whose token was cleared.
     */
    @Transactional
    public List<String> clearDeadTokens(Collection<DeadToken> dead, Instant now) {
        int n = dead.size();
        String[] installations = new String[n];
        String[] tokens = new String[n];
        Timestamp[] since = new Timestamp[n];
        int i = 0;
        for (DeadToken d : dead) {
            installations[i] = d.installationId();
            tokens[i] = d.token();
            since[i] = Timestamp.from(d.invalidSince());
            i++;
        }
        return jdbc.prepareStatement("""
                UPDATE devices d SET push_token = NULL, push_token_updated_at = ?
                FROM unnest(?::text[], ?::text[], ?::timestamptz[]) AS u(installation_id, token, since)
                WHERE d.installation_id = u.installation_id AND md5(d.push_token) = md5(u.token)
                  AND d.push_token = u.token AND d.last_seen_at <= u.since
                RETURNING d.installation_id""", ps -> {
            Connection c = ps.getConnection();
            ps.setTimestamp(1, Timestamp.from(now));
            ps.setArray(2, c.createArrayOf("text", installations));
            ps.setArray(3, c.createArrayOf("text", tokens));
            ps.setArray(4, c.createArrayOf("timestamptz", since));
            List<String> cleared = new ArrayList<>();
            try (ResultSet rs = ps.executeQuery()) {
                while (rs.next()) {
                    cleared.add(rs.getString(1));
                }
            }
            return cleared;
        });
    }

    /** When the earliest queued push or job falls due (empty when there is none). */
    @Transactional
    public Optional<Instant> nextDue() {
        return jdbc.prepareStatement("""
                SELECT least((SELECT min(next_attempt_at) FROM deliveries WHERE status = 'queued'),
                             (SELECT min(run_at) FROM jobs))""", ps -> {
            try (ResultSet rs = ps.executeQuery()) {
                rs.next();
                Timestamp t = rs.getTimestamp(1);
                return Optional.ofNullable(t == null ? null : t.toInstant());
            }
        });
    }

    // ------------------------------------------------------------------ reading

    /** How many of the notification's deliveries are in each status. */
    @Transactional
    public Map<String, Long> counts(String notificationId) {
        return jdbc.prepareStatement(
                "SELECT status, count(*) FROM deliveries WHERE notification_id = ? GROUP BY status ORDER BY status", ps -> {
                    ps.setString(1, notificationId);
                    Map<String, Long> counts = new LinkedHashMap<>();
                    try (ResultSet rs = ps.executeQuery()) {
                        while (rs.next()) {
                            counts.put(rs.getString(1), rs.getLong(2));
                        }
                    }
                    return counts;
                });
    }

    /** A delivery as the API shows it, with its position for paging. */
    public record Row(long id, DeliveryView view) {
    }

    @Transactional
    public List<Row> page(String notificationId, long after, int limit) {
        return jdbc.prepareStatement("""
                SELECT id, user_id, installation_id, channel, status, reason, attempts, updated_at
                FROM deliveries WHERE notification_id = ? AND id > ? ORDER BY id LIMIT ?""", ps -> {
            ps.setString(1, notificationId);
            ps.setLong(2, after);
            ps.setInt(3, limit);
            List<Row> rows = new ArrayList<>();
            try (ResultSet rs = ps.executeQuery()) {
                while (rs.next()) {
                    rows.add(new Row(rs.getLong(1), new DeliveryView(rs.getString(2), rs.getString(3), rs.getString(4),
                            rs.getString(5), rs.getString(6), rs.getInt(7), rs.getTimestamp(8).toInstant())));
                }
            }
            return rows;
        });
    }
}
