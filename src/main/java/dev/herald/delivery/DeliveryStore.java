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
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Deliveries and routing jobs in PostgreSQL. Queued push deliveries and routing jobs are queues:
 * claimed with {@code FOR UPDATE SKIP LOCKED}, a claim moving their due time forward by a lease, so
 * several nodes share them and a node that dies leaves its claims to the others once the lease ends.
 * Methods without {@code @Transactional} join the caller's transaction.
 */
@Singleton
public class DeliveryStore {

    private final JdbcOperations jdbc;

    DeliveryStore(JdbcOperations jdbc) {
        this.jdbc = jdbc;
    }

    private static final String INSERT = """
            INSERT INTO deliveries (notification_id, user_id, installation_id, channel, status, reason, attempts,
                                    next_attempt_at, updated_at)
            """;

    /**
     * Inserts a push delivery for each device {@code chosen} selects (a CTE over {@code devices} with
     * installation_id, user_id, platform, push_token, locale): a device with a token is queued, its
     * first attempt leased until the given time to the node that routes it (which sends it at once; if
     * that node dies, the lease ends and any node sends it); one whose token was cleared fails at once.
     * Answers the leased pushes and the last installation id routed.
     */
    private Routed insertPushes(String chosen, String notificationId, Instant now, Instant leasedUntil,
                                           SqlBinder bindChosen) {
        return jdbc.prepareStatement("WITH chosen AS (" + chosen + "), inserted AS (" + INSERT + """
                    SELECT ?, c.user_id, c.installation_id, 'push',
                           CASE WHEN c.push_token IS NULL THEN 'failed' ELSE 'queued' END,
                           CASE WHEN c.push_token IS NULL THEN 'no_token' END,
                           CASE WHEN c.push_token IS NULL THEN 0 ELSE ?::int END,
                           CASE WHEN c.push_token IS NULL THEN NULL ELSE ?::timestamptz END, ?
                    FROM chosen c
                    RETURNING id, installation_id, status)
                SELECT i.id, c.user_id, c.installation_id, c.platform, c.push_token, c.locale, i.status
                FROM inserted i JOIN chosen c ON c.installation_id = i.installation_id""", ps -> {
            int next = bindChosen.bind(ps);
            ps.setString(next, notificationId);
            // leased to this node: being tried now (attempt 1); otherwise untried, the first claim's attempt 1
            ps.setInt(next + 1, leasedUntil.isAfter(now) ? 1 : 0);
            ps.setTimestamp(next + 2, Timestamp.from(leasedUntil));
            ps.setTimestamp(next + 3, Timestamp.from(now));
            List<ClaimedPush> leased = new ArrayList<>();
            String last = null;
            try (ResultSet rs = ps.executeQuery()) {
                while (rs.next()) {
                    String installation = rs.getString(3);
                    if (last == null || installation.compareTo(last) > 0) {
                        last = installation;
                    }
                    if ("queued".equals(rs.getString(7))) {
                        leased.add(new ClaimedPush(rs.getLong(1), notificationId, rs.getString(2), installation, 1,
                                Platform.fromWire(rs.getString(4)), rs.getString(5), rs.getString(6), null));
                    }
                }
            }
            return new Routed(leased, last);
        });
    }

    /** Pushes routed and leased to this node, and the last installation id routed (null when none). */
    public record Routed(List<ClaimedPush> leased, String lastInstallation) {
    }

    /** Binds a statement's first parameters; answers the index of the next one. */
    @FunctionalInterface
    private interface SqlBinder {
        int bind(java.sql.PreparedStatement ps) throws SQLException;
    }

    private static final String DEVICE_COLUMNS = "SELECT installation_id, user_id, platform, push_token, locale FROM devices";

    /** The devices named (installation ids in the second parameter) of the app (the first). */
    private static final String NAMED_DEVICES = DEVICE_COLUMNS + " WHERE app_id = ? AND installation_id = ANY(?)";

    private static SqlBinder namedDevices(String appId, List<String> installationIds) {
        return ps -> {
            ps.setString(1, appId);
            ps.setArray(2, ps.getConnection().createArrayOf("text", installationIds.toArray()));
            return 3;
        };
    }

    /** Pushes to these installations of the app, leased until {@code leasedUntil}. */
    public Routed enqueueDevices(String notificationId, String appId, List<String> installationIds,
                                 Instant now, Instant leasedUntil) {
        return insertPushes(NAMED_DEVICES, notificationId, now, leasedUntil, namedDevices(appId, installationIds));
    }

    /** A device a fan-out pushes to before its delivery exists (token null when it has none). */
    public record Recipient(String installationId, String userId, Platform platform, String token, String locale) {
    }

    /**
     * The next {@code limit} devices of the app (in installation id order after {@code after}) carrying
     * one of the tags, as they are now; nothing is written.
     */
    public List<Recipient> taggedDevices(String appId, List<String> tags, String after, int limit) {
        return recipients(DEVICE_COLUMNS + " " + """
                 WHERE app_id = ? AND installation_id > ? AND cardinality(tags) > 0 AND tags && ?::text[]
                 ORDER BY installation_id LIMIT ?""", ps -> {
            ps.setString(1, appId);
            ps.setString(2, after);
            ps.setArray(3, ps.getConnection().createArrayOf("text", tags.toArray()));
            ps.setInt(4, limit);
            return 5;
        });
    }

    /** These installations of the app (those that exist), in installation id order; nothing is written. */
    public List<Recipient> devices(String appId, List<String> installationIds) {
        return recipients(NAMED_DEVICES + " ORDER BY installation_id", namedDevices(appId, installationIds));
    }

    private List<Recipient> recipients(String sql, SqlBinder binder) {
        return jdbc.prepareStatement(sql, ps -> {
            binder.bind(ps);
            List<Recipient> found = new ArrayList<>();
            try (ResultSet rs = ps.executeQuery()) {
                while (rs.next()) {
                    found.add(new Recipient(rs.getString(1), rs.getString(2), Platform.fromWire(rs.getString(3)),
                            rs.getString(4), rs.getString(5)));
                }
            }
            return found;
        });
    }

    /** A push delivery written once, with the outcome of its first attempt ({@code queued}: to retry). */
    public record Outcome(String userId, String installationId, int attempts, String status, String reason,
                          Instant nextAttemptAt) {

        /** A push's delivery as the dispatcher settled it; none (it always settles) is tried again. */
        static Outcome of(ClaimedPush push, @io.micronaut.core.annotation.Nullable PushDispatcher.Settled settled,
                          Instant now) {
            if (settled == null) {
                return new Outcome(push.userId(), push.installationId(), 1, "queued", "internal", now);
            }
            Finished f = settled.finished();
            return new Outcome(push.userId(), push.installationId(), f.attempts(), f.status(), f.reason(),
                    f.nextAttemptAt());
        }
    }

    /** Inserts push deliveries that were sent before they existed, each with its outcome, in one statement. */
    public void insertOutcomes(String notificationId, List<Outcome> outcomes, Instant now) {
        insertOutcomes(Map.of(notificationId, outcomes), now);
    }

    /** As {@link #insertOutcomes(String, List, Instant)} for the deliveries of many notifications at once. */
    public void insertOutcomes(Map<String, List<Outcome>> byNotification, Instant now) {
        int n = byNotification.values().stream().mapToInt(List::size).sum();
        if (n == 0) {
            return;
        }
        String[] notifications = new String[n];
        String[] users = new String[n];
        String[] installations = new String[n];
        Integer[] attempts = new Integer[n];
        String[] statuses = new String[n];
        String[] reasons = new String[n];
        Timestamp[] next = new Timestamp[n];
        int i = 0;
        for (Map.Entry<String, List<Outcome>> entry : byNotification.entrySet()) {
            for (Outcome o : entry.getValue()) {
                notifications[i] = entry.getKey();
                users[i] = o.userId();
                installations[i] = o.installationId();
                attempts[i] = o.attempts();
                statuses[i] = o.status();
                reasons[i] = o.reason();
                next[i] = o.nextAttemptAt() == null ? null : Timestamp.from(o.nextAttemptAt());
                i++;
            }
        }
        jdbc.prepareStatement(INSERT + """
                SELECT u.notification_id, u.user_id, u.installation_id, 'push', u.status, u.reason, u.attempts, u.next_at, ?
                FROM unnest(?::text[], ?::text[], ?::text[], ?::integer[], ?::text[], ?::text[], ?::timestamptz[])
                     AS u(notification_id, user_id, installation_id, attempts, status, reason, next_at)""", ps -> {
            Connection c = ps.getConnection();
            ps.setTimestamp(1, Timestamp.from(now));
            ps.setArray(2, c.createArrayOf("text", notifications));
            ps.setArray(3, c.createArrayOf("text", users));
            ps.setArray(4, c.createArrayOf("text", installations));
            ps.setArray(5, c.createArrayOf("integer", attempts));
            ps.setArray(6, c.createArrayOf("text", statuses));
            ps.setArray(7, c.createArrayOf("text", reasons));
            ps.setArray(8, c.createArrayOf("timestamptz", next));
            return ps.executeUpdate();
        });
    }

    /**
     * The devices a batch of notifications names (each of its notification's app), as they are now,
     * per notification; nothing is written. A notification none of whose devices exist is missing.
     */
    public Map<String, List<Recipient>> devicesOf(List<DeviceTarget> targets) {
        Map<String, List<Recipient>> found = new HashMap<>();
        if (targets.isEmpty()) {
            return found;
        }
        return jdbc.prepareStatement("""
                SELECT t.notification_id, d.installation_id, d.user_id, d.platform, d.push_token, d.locale
                FROM unnest(?::text[], ?::text[], ?::text[]) AS t(notification_id, app_id, installation_id)
                JOIN devices d ON d.installation_id = t.installation_id AND d.app_id = t.app_id""", ps -> {
            bindTargets(ps, targets);
            try (ResultSet rs = ps.executeQuery()) {
                while (rs.next()) {
                    found.computeIfAbsent(rs.getString(1), k -> new ArrayList<>()).add(new Recipient(rs.getString(2),
                            rs.getString(3), Platform.fromWire(rs.getString(4)), rs.getString(5), rs.getString(6)));
                }
            }
            return found;
        });
    }

    /**
     * Inserts a routing job for each notification, claimed by this node until {@code leasedUntil} (it
     * sends them now; if it dies, any node takes the jobs over once the lease ends). Answers the jobs
     * by notification id.
     */
    public Map<String, Job> insertClaimedJobs(Collection<String> notificationIds, Instant leasedUntil) {
        Map<String, Job> jobs = new HashMap<>();
        if (notificationIds.isEmpty()) {
            return jobs;
        }
        return jdbc.prepareStatement("""
                INSERT INTO jobs (notification_id, run_at, attempts) SELECT unnest(?::text[]), ?, 1
                RETURNING id, notification_id, attempts""", ps -> {
            ps.setArray(1, ps.getConnection().createArrayOf("text", notificationIds.toArray()));
            ps.setTimestamp(2, Timestamp.from(leasedUntil));
            try (ResultSet rs = ps.executeQuery()) {
                while (rs.next()) {
                    jobs.put(rs.getString(2), new Job(rs.getLong(1), rs.getString(2), "", rs.getInt(3)));
                }
            }
            return jobs;
        });
    }

    /** Deletes those of these jobs this node's claim still holds; answers their notification ids. */
    public java.util.Set<String> endJobs(Collection<Job> jobs) {
        Long[] ids = jobs.stream().map(Job::id).toArray(Long[]::new);
        Integer[] claims = jobs.stream().map(Job::claim).toArray(Integer[]::new);
        return jdbc.prepareStatement("""
                DELETE FROM jobs j USING unnest(?::bigint[], ?::integer[]) AS u(id, claim)
                WHERE j.id = u.id AND j.attempts = u.claim RETURNING j.notification_id""", ps -> {
            Connection c = ps.getConnection();
            ps.setArray(1, c.createArrayOf("bigint", ids));
            ps.setArray(2, c.createArrayOf("integer", claims));
            java.util.Set<String> ended = new java.util.HashSet<>();
            try (ResultSet rs = ps.executeQuery()) {
                while (rs.next()) {
                    ended.add(rs.getString(1));
                }
            }
            return ended;
        });
    }

    /** Whether the notification has a routing job (some of its deliveries may not exist yet). */
    @Transactional
    public boolean hasJob(String notificationId) {
        return jdbc.prepareStatement("SELECT EXISTS (SELECT 1 FROM jobs WHERE notification_id = ?)", ps -> {
            ps.setString(1, notificationId);
            try (ResultSet rs = ps.executeQuery()) {
                return rs.next() && rs.getBoolean(1);
            }
        });
    }

    /**
     * Routes users: a push for each of their devices of the app when {@code push} (leased until
     * {@code leasedUntil}, answered), {@code suppressed / no_device} for a user without one; and
     * {@code suppressed} with {@code otherReason} for each channel in {@code otherChannels} (those not
     * built yet).
     */
    public List<ClaimedPush> enqueueUsers(String notificationId, String appId, List<String> userIds, boolean push,
                                          List<String> otherChannels, String otherReason, Instant now,
                                          Instant leasedUntil) {
        List<ClaimedPush> leased = List.of();
        if (push) {
            leased = insertPushes(DEVICE_COLUMNS + " WHERE app_id = ? AND user_id = ANY(?)", notificationId, now,
                    leasedUntil, ps -> {
                        ps.setString(1, appId);
                        ps.setArray(2, ps.getConnection().createArrayOf("text", userIds.toArray()));
                        return 3;
                    }).leased();
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
        return leased;
    }

    /** A step taken or not for a user, without a device: an inbox, live or email delivery. */
    public record UserStep(String userId, String channel, String status, String reason) {
    }

    /** Inserts one delivery per step (no device, no attempt). */
    public void insertUserSteps(String notificationId, List<UserStep> steps, Instant now) {
        if (steps.isEmpty()) {
            return;
        }
        int n = steps.size();
        String[] users = new String[n];
        String[] channels = new String[n];
        String[] statuses = new String[n];
        String[] reasons = new String[n];
        for (int i = 0; i < n; i++) {
            users[i] = steps.get(i).userId();
            channels[i] = steps.get(i).channel();
            statuses[i] = steps.get(i).status();
            reasons[i] = steps.get(i).reason();
        }
        jdbc.prepareStatement(INSERT + """
                SELECT ?, u.user_id, NULL, u.channel, u.status, u.reason, 0, NULL, ?
                FROM unnest(?::text[], ?::text[], ?::text[], ?::text[]) AS u(user_id, channel, status, reason)""", ps -> {
            Connection c = ps.getConnection();
            ps.setString(1, notificationId);
            ps.setTimestamp(2, Timestamp.from(now));
            ps.setArray(3, c.createArrayOf("text", users));
            ps.setArray(4, c.createArrayOf("text", channels));
            ps.setArray(5, c.createArrayOf("text", statuses));
            ps.setArray(6, c.createArrayOf("text", reasons));
            return ps.executeUpdate();
        });
    }

    /** A device of a user, as a silent badge update needs it. */
    public record UserDevice(String installationId, Platform platform, String token) {
    }

    /** The user's devices of the app that hold a push token. */
    @Transactional
    public List<UserDevice> devicesOf(String userId, String appId) {
        return jdbc.prepareStatement("""
                SELECT installation_id, platform, push_token FROM devices
                WHERE user_id = ? AND app_id = ? AND push_token IS NOT NULL ORDER BY installation_id""", ps -> {
            ps.setString(1, userId);
            ps.setString(2, appId);
            List<UserDevice> devices = new ArrayList<>();
            try (ResultSet rs = ps.executeQuery()) {
                while (rs.next()) {
                    devices.add(new UserDevice(rs.getString(1), Platform.fromWire(rs.getString(2)), rs.getString(3)));
                }
            }
            return devices;
        });
    }

    /** The reason a push waiting for a live acknowledgement carries until it is sent or suppressed. */
    public static final String AWAITING_ACK = "awaiting_ack";

    /**
     * Queues a push per device of each user, due at {@code dueAt} (not leased: any node sends it then),
     * for users reached on streams that acknowledge: a {@code received} receipt before then suppresses
     * them ({@code present}). Users without a device get {@code suppressed / no_device}.
     */
    public void queuePushesAfterAck(String notificationId, String appId, List<String> userIds, Instant dueAt, Instant now) {
        if (userIds.isEmpty()) {
            return;
        }
        jdbc.prepareStatement(INSERT + """
                SELECT ?, u.user_id, d.installation_id, 'push',
                       CASE WHEN d.installation_id IS NULL THEN 'suppressed'
                            WHEN d.push_token IS NULL THEN 'failed' ELSE 'queued' END,
                       CASE WHEN d.installation_id IS NULL THEN 'no_device'
                            WHEN d.push_token IS NULL THEN 'no_token' ELSE ? END,
                       0, CASE WHEN d.push_token IS NULL THEN NULL ELSE ?::timestamptz END, ?
                FROM unnest(?::text[]) AS u(user_id)
                LEFT JOIN devices d ON d.user_id = u.user_id AND d.app_id = ?""", ps -> {
            ps.setString(1, notificationId);
            ps.setString(2, AWAITING_ACK);
            ps.setTimestamp(3, Timestamp.from(dueAt));
            ps.setTimestamp(4, Timestamp.from(now));
            ps.setArray(5, ps.getConnection().createArrayOf("text", userIds.toArray()));
            ps.setString(6, appId);
            return ps.executeUpdate();
        });
    }

    /** Queues an email step per user, due at {@code dueAt} (the email worker waits for the user's pushes). */
    public void queueEmails(String notificationId, List<String> userIds, Instant dueAt, Instant now) {
        if (userIds.isEmpty()) {
            return;
        }
        jdbc.prepareStatement(INSERT + """
                SELECT ?, u.user_id, NULL, 'email', 'queued', NULL, 0, ?, ?
                FROM unnest(?::text[]) AS u(user_id)""", ps -> {
            ps.setString(1, notificationId);
            ps.setTimestamp(2, Timestamp.from(dueAt));
            ps.setTimestamp(3, Timestamp.from(now));
            ps.setArray(4, ps.getConnection().createArrayOf("text", userIds.toArray()));
            return ps.executeUpdate();
        });
    }

    /**
     * Records pushes not sent for a reason of the user's (preference, quiet hours): one suppressed
     * delivery per device the user has for the app, or one for the user when they have none.
     */
    public void suppressPushes(String notificationId, String appId, Map<String, String> reasonByUser, Instant now) {
        if (reasonByUser.isEmpty()) {
            return;
        }
        String[] users = reasonByUser.keySet().toArray(String[]::new);
        String[] reasons = new String[users.length];
        for (int i = 0; i < users.length; i++) {
            reasons[i] = reasonByUser.get(users[i]);
        }
        jdbc.prepareStatement(INSERT + """
                SELECT ?, u.user_id, d.installation_id, 'push', 'suppressed', u.reason, 0, NULL, ?
                FROM unnest(?::text[], ?::text[]) AS u(user_id, reason)
                LEFT JOIN devices d ON d.user_id = u.user_id AND d.app_id = ?""", ps -> {
            Connection c = ps.getConnection();
            ps.setString(1, notificationId);
            ps.setTimestamp(2, Timestamp.from(now));
            ps.setArray(3, c.createArrayOf("text", users));
            ps.setArray(4, c.createArrayOf("text", reasons));
            ps.setString(5, appId);
            return ps.executeUpdate();
        });
    }

    /** The locale of each user's most recently seen device of the app that has one. */
    public Map<String, String> deviceLocales(String appId, List<String> userIds) {
        return jdbc.prepareStatement("""
                SELECT DISTINCT ON (user_id) user_id, locale FROM devices
                WHERE app_id = ? AND user_id = ANY(?) AND locale IS NOT NULL
                ORDER BY user_id, last_seen_at DESC""", ps -> {
            ps.setString(1, appId);
            ps.setArray(2, ps.getConnection().createArrayOf("text", userIds.toArray()));
            Map<String, String> locales = new java.util.HashMap<>();
            try (ResultSet rs = ps.executeQuery()) {
                while (rs.next()) {
                    locales.put(rs.getString(1), rs.getString(2));
                }
            }
            return locales;
        });
    }

    /**
     * A device's receipt: the user's deliveries of the notification move to {@code delivered} or
     * {@code opened}, never backwards (push deliveries of that installation only, when one is named;
     * inbox and live deliveries always). Answers false when the user has no delivery of the notification.
     */
    public boolean receipt(String notificationId, String userId, String installationId, boolean opened, Instant now) {
        boolean known = jdbc.prepareStatement(
                "SELECT EXISTS (SELECT 1 FROM deliveries WHERE notification_id = ? AND user_id = ?)", ps -> {
                    ps.setString(1, notificationId);
                    ps.setString(2, userId);
                    try (ResultSet rs = ps.executeQuery()) {
                        rs.next();
                        return rs.getBoolean(1);
                    }
                });
        if (!known) {
            return false;
        }
        // acknowledged live: the pushes that waited for it are not needed
        jdbc.prepareStatement("""
                UPDATE deliveries SET status = 'suppressed', reason = 'present', next_attempt_at = NULL, updated_at = ?
                WHERE notification_id = ? AND user_id = ? AND channel = 'push' AND status = 'queued'
                  AND reason = ? AND attempts = 0""", ps -> {
            ps.setTimestamp(1, Timestamp.from(now));
            ps.setString(2, notificationId);
            ps.setString(3, userId);
            ps.setString(4, AWAITING_ACK);
            return ps.executeUpdate();
        });
        jdbc.prepareStatement("""
                UPDATE deliveries SET status = ?, updated_at = ?,
                       reason = CASE WHEN reason = 'awaiting_ack' THEN NULL ELSE reason END
                WHERE notification_id = ? AND user_id = ? AND channel IN ('push', 'live', 'inApp')
                  AND status = ANY(?)
                  AND (channel <> 'push' OR ?::text IS NULL OR installation_id = ?)""", ps -> {
            ps.setString(1, opened ? "opened" : "delivered");
            ps.setTimestamp(2, Timestamp.from(now));
            ps.setString(3, notificationId);
            ps.setString(4, userId);
            ps.setArray(5, ps.getConnection().createArrayOf("text", opened
                    ? new String[] {"queued", "sent", "delivered"} : new String[] {"queued", "sent"}));
            ps.setString(6, installationId);
            ps.setString(7, installationId);
            return ps.executeUpdate();
        });
        return true;
    }

    /** One device a notification of a batch names. */
    public record DeviceTarget(String notificationId, String appId, String installationId) {
    }

    /** Binds the first three parameters: the targets' notification ids, apps and installation ids (text arrays). */
    private static void bindTargets(java.sql.PreparedStatement ps, List<DeviceTarget> targets) throws SQLException {
        Connection c = ps.getConnection();
        ps.setArray(1, c.createArrayOf("text", targets.stream().map(DeviceTarget::notificationId).toArray()));
        ps.setArray(2, c.createArrayOf("text", targets.stream().map(DeviceTarget::appId).toArray()));
        ps.setArray(3, c.createArrayOf("text", targets.stream().map(DeviceTarget::installationId).toArray()));
    }

    /** Per notification of a batch: how many devices matched, and the pushes leased to this node. */
    public record BatchRouted(Map<String, Integer> matched, Map<String, List<ClaimedPush>> leased) {
    }

    /**
     * Routes many notifications' named devices in one statement (the deliveries' reference to their
     * notification is checked at commit, so the notifications may be inserted after): a push per
     * device of the notification's app, leased until {@code leasedUntil}, as {@link #enqueueDevices}.
     */
    public BatchRouted enqueueDeviceBatch(List<DeviceTarget> targets, Instant now, Instant leasedUntil) {
        Map<String, Integer> matched = new java.util.HashMap<>();
        Map<String, List<ClaimedPush>> leased = new java.util.HashMap<>();
        if (targets.isEmpty()) {
            return new BatchRouted(matched, leased);
        }
        return jdbc.prepareStatement("""
                WITH chosen AS (
                    SELECT t.notification_id, d.installation_id, d.user_id, d.platform, d.push_token, d.locale
                    FROM unnest(?::text[], ?::text[], ?::text[]) AS t(notification_id, app_id, installation_id)
                    JOIN devices d ON d.installation_id = t.installation_id AND d.app_id = t.app_id),
                inserted AS (""" + INSERT + """
                    SELECT c.notification_id, c.user_id, c.installation_id, 'push',
                           CASE WHEN c.push_token IS NULL THEN 'failed' ELSE 'queued' END,
                           CASE WHEN c.push_token IS NULL THEN 'no_token' END,
                           CASE WHEN c.push_token IS NULL THEN 0 ELSE ?::int END,
                           CASE WHEN c.push_token IS NULL THEN NULL ELSE ?::timestamptz END, ?
                    FROM chosen c
                    RETURNING id, notification_id, installation_id, status)
                SELECT i.id, i.notification_id, c.user_id, c.installation_id, c.platform, c.push_token, c.locale, i.status
                FROM inserted i JOIN chosen c ON c.notification_id = i.notification_id
                                             AND c.installation_id = i.installation_id""", ps -> {
            bindTargets(ps, targets);
            ps.setInt(4, leasedUntil.isAfter(now) ? 1 : 0);
            ps.setTimestamp(5, Timestamp.from(leasedUntil));
            ps.setTimestamp(6, Timestamp.from(now));
            try (ResultSet rs = ps.executeQuery()) {
                while (rs.next()) {
                    String notificationId = rs.getString(2);
                    matched.merge(notificationId, 1, Integer::sum);
                    if ("queued".equals(rs.getString(8))) {
                        leased.computeIfAbsent(notificationId, k -> new ArrayList<>()).add(new ClaimedPush(
                                rs.getLong(1), notificationId, rs.getString(3), rs.getString(4), 1,
                                Platform.fromWire(rs.getString(5)), rs.getString(6), rs.getString(7), null));
                    }
                }
            }
            return new BatchRouted(matched, leased);
        });
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

    // ------------------------------------------------------------------ routing jobs

    /**
     * A claimed routing job: route {@code notificationId}'s recipients after {@code cursor}.
     * {@code claim} (the job's attempt count at claiming) proves the claim is still this node's.
     */
    public record Job(long id, String notificationId, String cursor, int claim) {
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
                RETURNING j.id, j.notification_id, j.cursor, j.attempts""", ps -> {
            ps.setTimestamp(1, Timestamp.from(now.plus(lease)));
            ps.setTimestamp(2, Timestamp.from(now));
            ps.setInt(3, limit);
            List<Job> jobs = new ArrayList<>();
            try (ResultSet rs = ps.executeQuery()) {
                while (rs.next()) {
                    jobs.add(new Job(rs.getLong(1), rs.getString(2), rs.getString(3), rs.getInt(4)));
                }
            }
            return jobs;
        });
    }

    /**
     * Records progress and renews the lease; false when the job is gone (the notification was
     * cancelled) or another node claimed it since (this node's lease ran out).
     */
    public boolean advanceJob(Job job, String cursor, Instant leaseUntil) {
        return jdbc.prepareStatement("UPDATE jobs SET cursor = ?, run_at = ? WHERE id = ? AND attempts = ?", ps -> {
            ps.setString(1, cursor);
            ps.setTimestamp(2, Timestamp.from(leaseUntil));
            ps.setLong(3, job.id());
            ps.setInt(4, job.claim());
            return ps.executeUpdate() == 1;
        });
    }

    /** The job's cursor while this node's claim holds; empty otherwise. */
    public java.util.Optional<String> jobCursor(Job job) {
        return jdbc.prepareStatement("SELECT cursor FROM jobs WHERE id = ? AND attempts = ?", ps -> {
            ps.setLong(1, job.id());
            ps.setInt(2, job.claim());
            try (ResultSet rs = ps.executeQuery()) {
                return rs.next() ? java.util.Optional.of(rs.getString(1)) : java.util.Optional.<String>empty();
            }
        });
    }

    /** Deletes the job while this node's claim holds; false otherwise. */
    public boolean deleteJob(Job job) {
        return jdbc.prepareStatement("DELETE FROM jobs WHERE id = ? AND attempts = ?", ps -> {
            ps.setLong(1, job.id());
            ps.setInt(2, job.claim());
            return ps.executeUpdate() == 1;
        });
    }

    /**
     * Records on the job the users it shows a notification live before their chunks are stored, and
     * draws an inbox item id for each of them in {@code withItem} (the others are shown the notification
     * without an item), renewing the job's lease until {@code leaseUntil}. {@code users} are ones the job
     * has not shown it to yet ({@link #keptLive} tells which it has: a job taken over keeps what a node
     * showed before, ids and time). Answers the ids drawn and the time the items carry (the time the
     * job's first reservation set); empty when the claim is no longer this node's.
     */
    public java.util.Optional<LiveReservation> reserveLive(Job job, List<String> users, java.util.Set<String> withItem,
                                                           Instant now, Instant leaseUntil) {
        // the row locked while the claim holds; the arrays are neither read nor sent back whole (a fan-out
        // reserves slice after slice, and they grow with each)
        Instant at = jdbc.prepareStatement("SELECT coalesce(live_at, ?) FROM jobs WHERE id = ? AND attempts = ? FOR UPDATE", ps -> {
            ps.setTimestamp(1, Timestamp.from(now));
            ps.setLong(2, job.id());
            ps.setInt(3, job.claim());
            try (ResultSet rs = ps.executeQuery()) {
                return rs.next() ? rs.getTimestamp(1).toInstant() : null;
            }
        });
        if (at == null) {
            return java.util.Optional.empty();
        }
        List<String> adding = users.stream().distinct().toList();
        List<String> drawFor = adding.stream().filter(withItem::contains).toList();
        List<Long> drawn = drawFor.isEmpty() ? List.of()
                : jdbc.prepareStatement("SELECT nextval('inbox_items_id_seq') FROM generate_series(1, ?)", ps -> {
                    ps.setInt(1, drawFor.size());
                    List<Long> out = new ArrayList<>(drawFor.size());
                    try (ResultSet rs = ps.executeQuery()) {
                        while (rs.next()) {
                            out.add(rs.getLong(1));
                        }
                    }
                    return out;
                });
        Map<String, Long> mine = new HashMap<>();
        for (int i = 0; i < drawFor.size(); i++) {
            mine.put(drawFor.get(i), drawn.get(i));
        }
        Long[] items = adding.stream().map(mine::get).toArray(Long[]::new);
        jdbc.prepareStatement("UPDATE jobs SET live_users = coalesce(live_users, '{}') || ?::text[], "
                + "live_items = coalesce(live_items, '{}') || ?::bigint[], live_at = ?, run_at = ? WHERE id = ?", ps -> {
            ps.setArray(1, ps.getConnection().createArrayOf("text", adding.toArray()));
            ps.setArray(2, ps.getConnection().createArrayOf("bigint", items));
            ps.setTimestamp(3, Timestamp.from(at));
            ps.setTimestamp(4, Timestamp.from(leaseUntil));
            ps.setLong(5, job.id());
            return ps.executeUpdate();
        });
        return java.util.Optional.of(new LiveReservation(mine, at));
    }

    /**
     * What a node that had the job before (it was taken over) showed live: the users, the inbox item ids
     * reserved for some of them, and the time; empty (time null) when it showed nothing.
     */
    public KeptLive keptLive(Job job) {
        Kept kept = kept(job);
        Map<String, Long> ids = new HashMap<>();
        if (kept != null) {
            kept.ids().forEach((user, id) -> {
                if (id != null) {
                    ids.put(user, id);
                }
            });
        }
        return new KeptLive(kept == null ? java.util.Set.of() : java.util.Set.copyOf(kept.ids().keySet()), ids,
                kept == null ? null : kept.at());
    }

    /** See {@link #keptLive}. */
    public record KeptLive(java.util.Set<String> users, Map<String, Long> itemIds, Instant at) {
    }

    private record Kept(Map<String, Long> ids, Instant at) {
    }

    /** The job's reservation; null without the job. */
    private Kept kept(Job job) {
        return jdbc.prepareStatement("SELECT live_users, live_items, live_at FROM jobs WHERE id = ?", ps -> {
            ps.setLong(1, job.id());
            try (ResultSet rs = ps.executeQuery()) {
                if (!rs.next()) {
                    return null;
                }
                java.sql.Array u = rs.getArray(1);
                java.sql.Array i = rs.getArray(2);
                Timestamp at = rs.getTimestamp(3);
                Map<String, Long> ids = new LinkedHashMap<>();
                if (u != null && i != null) {
                    String[] users = (String[]) u.getArray();
                    Long[] items = (Long[]) i.getArray();
                    for (int k = 0; k < users.length; k++) {
                        ids.put(users[k], items[k]);
                    }
                }
                return new Kept(ids, at == null ? null : at.toInstant());
            }
        });
    }

    /** The inbox item ids a job reserved, per user, and the time their items carry (null: none reserved). */
    public record LiveReservation(Map<String, Long> itemIds, Instant at) {
    }

    /**
     * Whether a routing job showed this item to the user live and has not stored it yet (users are routed
     * in order, so the user is past the job's cursor).
     */
    public boolean shownNotStored(String userId, long itemId) {
        return notRoutedYet(userId, """
                SELECT j.cursor FROM jobs j, unnest(j.live_users, j.live_items) AS r(user_id, item_id)
                WHERE j.live_items @> ARRAY[?::bigint] AND r.item_id = ? AND r.user_id = ?""", ps -> {
            ps.setLong(1, itemId);
            ps.setLong(2, itemId);
            ps.setString(3, userId);
        });
    }

    /** Whether a routing job showed the notification to the user live and has not stored their deliveries yet. */
    public boolean shownNotStored(String notificationId, String userId) {
        return notRoutedYet(userId, "SELECT cursor FROM jobs WHERE notification_id = ? AND live_users @> ARRAY[?::text]", ps -> {
            ps.setString(1, notificationId);
            ps.setString(2, userId);
        });
    }

    private interface Binder {
        void bind(java.sql.PreparedStatement ps) throws SQLException;
    }

    private boolean notRoutedYet(String userId, String cursorsSql, Binder binder) {
        return jdbc.prepareStatement(cursorsSql, ps -> {
            binder.bind(ps);
            try (ResultSet rs = ps.executeQuery()) {
                while (rs.next()) {
                    // compared as Java orders the ids it routes (not by the database's collation)
                    if (userId.compareTo(rs.getString(1)) > 0) {
                        return true;
                    }
                }
                return false;
            }
        });
    }

    /** Whether the user's device has a push delivery of the notification. */
    public boolean hasPush(String notificationId, String userId, String installationId) {
        return jdbc.prepareStatement("""
                SELECT EXISTS (SELECT 1 FROM deliveries WHERE notification_id = ? AND user_id = ? AND installation_id = ?
                               AND channel = 'push')""", ps -> {
            ps.setString(1, notificationId);
            ps.setString(2, userId);
            ps.setString(3, installationId);
            try (ResultSet rs = ps.executeQuery()) {
                return rs.next() && rs.getBoolean(1);
            }
        });
    }

    /**
     * Whether the notification is a fan-out still being routed (a device or tag target with the push
     * channel, see {@code FanOut} and {@code PushesFirst}): some of its push deliveries may not be written yet.
     */
    public boolean fanningOut(String notificationId) {
        return jdbc.prepareStatement("""
                SELECT EXISTS (SELECT 1 FROM jobs j JOIN notifications n ON n.id = j.notification_id
                               WHERE j.notification_id = ? AND n.status = 'routing'
                                 AND (n.request->'to'->'tags' IS NOT NULL OR n.request->'to'->'devices' IS NOT NULL)
                                 AND (n.request->'channels' IS NULL OR n.request->'channels' @> '["push"]'))""", ps -> {
            ps.setString(1, notificationId);
            try (ResultSet rs = ps.executeQuery()) {
                return rs.next() && rs.getBoolean(1);
            }
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
                              Platform platform, String token, String locale, String lastReason) {
    }

    /**
     * Claims up to {@code limit} queued pushes that are due, until {@code now + lease}. The device is
     * read as it is now, and only while it still belongs to the same user and app: a token cleared or
     * moved since routing is never pushed to.
     */
    @Transactional
    public List<ClaimedPush> claimDue(Instant now, Duration lease, int limit) {
        return jdbc.prepareStatement("""
                WITH due AS (
                    SELECT id, reason FROM deliveries WHERE status = 'queued' AND next_attempt_at <= ?
                                   AND channel = 'push'
                                   ORDER BY next_attempt_at LIMIT ? FOR UPDATE SKIP LOCKED),
                claimed AS (
                    -- a push in flight has no reason (until its outcome is written): see retryNow
                    UPDATE deliveries d SET next_attempt_at = ?, attempts = d.attempts + 1, reason = NULL
                    FROM due WHERE d.id = due.id
                    RETURNING d.id, d.notification_id, d.user_id, d.installation_id, d.attempts, due.reason)
                SELECT c.id, c.notification_id, c.user_id, c.installation_id, c.attempts, v.platform, v.push_token, v.locale,
                       c.reason
                FROM claimed c
                JOIN notifications n ON n.id = c.notification_id
                LEFT JOIN devices v ON v.installation_id = c.installation_id AND v.user_id = c.user_id
                                   AND v.app_id = n.app_id""", ps -> {
            ps.setTimestamp(1, Timestamp.from(now));
            ps.setInt(2, limit);
            ps.setTimestamp(3, Timestamp.from(now.plus(lease)));
            List<ClaimedPush> claimed = new ArrayList<>();
            try (ResultSet rs = ps.executeQuery()) {
                while (rs.next()) {
                    String platform = rs.getString(6);
                    claimed.add(new ClaimedPush(rs.getLong(1), rs.getString(2), rs.getString(3), rs.getString(4),
                            rs.getInt(5), platform == null ? null : Platform.fromWire(platform), rs.getString(7),
                            rs.getString(8), rs.getString(9)));
                }
            }
            return claimed;
        });
    }

    /** A queued email step, claimed: what the email worker needs to decide and to write it. */
    public record ClaimedEmail(long id, String notificationId, String userId, int attempts, String appId, boolean test,
                               String request, Instant expiresAt) {
    }

    /** Claims up to {@code limit} due email steps until {@code now + lease} (attempts are counted when one is sent). */
    @Transactional
    public List<ClaimedEmail> claimDueEmails(Instant now, Duration lease, int limit) {
        return jdbc.prepareStatement("""
                WITH claimed AS (
                    UPDATE deliveries d SET next_attempt_at = ?
                    WHERE d.id IN (SELECT id FROM deliveries WHERE status = 'queued' AND next_attempt_at <= ?
                                   AND channel = 'email'
                                   ORDER BY next_attempt_at LIMIT ? FOR UPDATE SKIP LOCKED)
                    RETURNING d.id, d.notification_id, d.user_id, d.attempts)
                SELECT c.id, c.notification_id, c.user_id, c.attempts, n.app_id, n.test, n.request::text, n.expires_at
                FROM claimed c JOIN notifications n ON n.id = c.notification_id""", ps -> {
            ps.setTimestamp(1, Timestamp.from(now.plus(lease)));
            ps.setTimestamp(2, Timestamp.from(now));
            ps.setInt(3, limit);
            List<ClaimedEmail> claimed = new ArrayList<>();
            try (ResultSet rs = ps.executeQuery()) {
                while (rs.next()) {
                    claimed.add(new ClaimedEmail(rs.getLong(1), rs.getString(2), rs.getString(3), rs.getInt(4),
                            rs.getString(5), rs.getBoolean(6), rs.getString(7), rs.getTimestamp(8).toInstant()));
                }
            }
            return claimed;
        });
    }

    /**
     * Writes an email step's new state while it is still queued at the attempt it was claimed with;
     * {@code sentNow} counts an attempt. Answers whether it was written.
     */
    @Transactional
    public boolean finishEmail(long id, int claimedAttempts, String status, String reason, Instant nextAttemptAt,
                               boolean sentNow, Instant now) {
        return jdbc.prepareStatement("""
                UPDATE deliveries SET status = ?, reason = ?, next_attempt_at = ?, attempts = attempts + ?, updated_at = ?
                WHERE id = ? AND status = 'queued' AND attempts = ?""", ps -> {
            ps.setString(1, status);
            ps.setString(2, reason);
            ps.setTimestamp(3, nextAttemptAt == null ? null : Timestamp.from(nextAttemptAt));
            ps.setInt(4, sentNow ? 1 : 0);
            ps.setTimestamp(5, Timestamp.from(now));
            ps.setLong(6, id);
            ps.setInt(7, claimedAttempts);
            return ps.executeUpdate() == 1;
        });
    }

    /**
     * Takes an email step for sending: counts the attempt and renews the lease, only while it is still
     * queued at the attempt it was claimed with (a node whose lease ran out does not send it as well).
     */
    @Transactional
    public boolean takeEmail(long id, int claimedAttempts, Instant leasedUntil) {
        return jdbc.prepareStatement("""
                UPDATE deliveries SET attempts = attempts + 1, next_attempt_at = ?
                WHERE id = ? AND status = 'queued' AND attempts = ?""", ps -> {
            ps.setTimestamp(1, Timestamp.from(leasedUntil));
            ps.setLong(2, id);
            ps.setInt(3, claimedAttempts);
            return ps.executeUpdate() == 1;
        });
    }

    /** How the user's push and live steps of the notification stand: deliveries by channel and status. */
    @Transactional
    public Map<String, Long> userSteps(String notificationId, String userId) {
        return jdbc.prepareStatement("""
                SELECT channel || ':' || status || coalesce(':' || reason, ''), count(*) FROM deliveries
                WHERE notification_id = ? AND user_id = ? AND channel IN ('push', 'live') GROUP BY 1""", ps -> {
            ps.setString(1, notificationId);
            ps.setString(2, userId);
            Map<String, Long> steps = new java.util.HashMap<>();
            try (ResultSet rs = ps.executeQuery()) {
                while (rs.next()) {
                    steps.put(rs.getString(1), rs.getLong(2));
                }
            }
            return steps;
        });
    }

    /** Makes pushes leased to this node (still at their first attempt) due now again, for any node to claim. */
    @Transactional
    public void releaseLeases(List<Long> ids, Instant now) {
        jdbc.prepareStatement("UPDATE deliveries SET next_attempt_at = ?, attempts = 0"
                + " WHERE id = ANY(?) AND status = 'queued' AND attempts = 1", ps -> {
            ps.setTimestamp(1, Timestamp.from(now));
            ps.setArray(2, ps.getConnection().createArrayOf("bigint", ids.toArray()));
            return ps.executeUpdate();
        });
    }

    /**
     * Makes the app's pushes to {@code platform} that wait for a retry (a reason: their last attempt's
     * failure) due within {@code spread} of {@code now}: its gateway is back; their backoff was for the
     * outage. Never a push in flight: a claim clears the reason until the outcome is written (so this
     * holds whatever the nodes' clocks say). Left alone too: pushes waiting for a live receipt, and
     * pushes the gateway itself told to wait ({@code TooManyRequests}, {@code QUOTA_EXCEEDED}: its
     * {@code Retry-After} stands). Answers how many were brought forward.
     */
    @Transactional
    public int retryNow(String appId, Platform platform, Instant now, Duration spread) {
        return jdbc.prepareStatement("""
                UPDATE deliveries d SET next_attempt_at = ?::timestamptz + random() * (?::bigint * interval '1 millisecond')
                WHERE d.status = 'queued' AND d.channel = 'push' AND d.next_attempt_at > ?::timestamptz
                  AND d.reason IS NOT NULL AND d.reason NOT IN ('awaiting_ack', 'TooManyRequests', 'QUOTA_EXCEEDED')
                  AND d.notification_id IN (SELECT id FROM notifications WHERE app_id = ?)
                  AND EXISTS (SELECT 1 FROM devices v WHERE v.installation_id = d.installation_id
                              AND v.app_id = ? AND v.platform = ?)""", ps -> {
            ps.setTimestamp(1, Timestamp.from(now));
            ps.setLong(2, spread.toMillis());
            ps.setTimestamp(3, Timestamp.from(now.plus(spread)));
            ps.setString(4, appId);
            ps.setString(5, appId);
            ps.setString(6, platform.wire());
            return ps.executeUpdate();
        });
    }

    /** A delivery's new state: final, or {@code queued} again until {@code nextAttemptAt}. */
    public record Finished(long id, int attempts, String status, String reason, Instant nextAttemptAt) {
    }

    /**
     * Writes outcomes in one statement; each only while the delivery is still queued with the attempt
     * it was sent as (a result that comes back after its lease ended and another attempt began is
     * dropped, never overwriting that attempt's outcome). The status test is written {@code IN ('queued', '')}
     * (no status is empty) so that it does not match the predicate of {@code deliveries_due}: with that
     * partial index usable, PostgreSQL scanned every queued delivery (every push in flight) once per
     * statement, about 1 ms each at 1,000 in flight; now each outcome is found by its primary key.
     */
    @Transactional
    public void finish(List<Finished> outcomes, Instant now) {
        int n = outcomes.size();
        Long[] ids = new Long[n];
        Integer[] attempts = new Integer[n];
        String[] statuses = new String[n];
        String[] reasons = new String[n];
        Timestamp[] next = new Timestamp[n];
        for (int i = 0; i < n; i++) {
            Finished f = outcomes.get(i);
            ids[i] = f.id();
            attempts[i] = f.attempts();
            statuses[i] = f.status();
            reasons[i] = f.reason();
            next[i] = f.nextAttemptAt() == null ? null : Timestamp.from(f.nextAttemptAt());
        }
        jdbc.prepareStatement("""
                UPDATE deliveries d SET status = u.status, reason = u.reason, next_attempt_at = u.next_at, updated_at = ?
                FROM unnest(?::bigint[], ?::integer[], ?::text[], ?::text[], ?::timestamptz[])
                     AS u(id, attempts, status, reason, next_at)
                WHERE d.id = u.id AND d.status IN ('queued', '') AND d.attempts = u.attempts""", ps -> {
            Connection c = ps.getConnection();
            ps.setTimestamp(1, Timestamp.from(now));
            ps.setArray(2, c.createArrayOf("bigint", ids));
            ps.setArray(3, c.createArrayOf("integer", attempts));
            ps.setArray(4, c.createArrayOf("text", statuses));
            ps.setArray(5, c.createArrayOf("text", reasons));
            ps.setArray(6, c.createArrayOf("timestamptz", next));
            return ps.executeUpdate();
        });
    }

    /** A token a gateway called dead, as of {@code invalidSince}. */
    public record DeadToken(String installationId, String token, Instant invalidSince, String reason) {
    }

    /**
     * Clears each alert token from its device unless it changed or was registered again after the
     * gateway's invalidation time (compare-and-clear); answers the installations whose token was cleared.
     */
    @Transactional
    public List<String> clearDeadTokens(Collection<DeadToken> dead, Instant now) {
        return clearDeadTokens(dead, false, now);
    }

    /**
     * As {@link #clearDeadTokens(Collection, Instant)}, for VoIP tokens when {@code voip}; each token
     * cleared is counted in the statistics and told to the app's webhook ({@code device.unregistered}).
     */
    @Transactional
    public List<String> clearDeadTokens(Collection<DeadToken> dead, boolean voip, Instant now) {
        String column = voip ? "voip_token" : "push_token";
        String kind = voip ? "voip" : "push";
        int n = dead.size();
        String[] installations = new String[n];
        String[] tokens = new String[n];
        Timestamp[] since = new Timestamp[n];
        String[] reasons = new String[n];
        int i = 0;
        for (DeadToken d : dead) {
            installations[i] = d.installationId();
            tokens[i] = d.token();
            since[i] = Timestamp.from(d.invalidSince());
            reasons[i] = d.reason();
            i++;
        }
        return jdbc.prepareStatement("""
                WITH cleared AS (
                    UPDATE devices d SET %1$s = NULL, %1$s_updated_at = ?
                    FROM unnest(?::text[], ?::text[], ?::timestamptz[], ?::text[]) AS u(installation_id, token, since, reason)
                    WHERE d.installation_id = u.installation_id AND md5(d.%1$s) = md5(u.token)
                      AND d.%1$s = u.token AND d.last_seen_at <= u.since
                    RETURNING d.installation_id, d.user_id, d.app_id, d.platform, u.reason)
                """.formatted(column) + dev.herald.webhooks.WebhookStore.UNREGISTERED_EVENTS.formatted(kind)
                + dev.herald.stats.StatsCounter.TOKENS_REMOVED.formatted(kind) + """
                SELECT installation_id FROM cleared""", ps -> {
            Connection c = ps.getConnection();
            ps.setTimestamp(1, Timestamp.from(now));
            ps.setArray(2, c.createArrayOf("text", installations));
            ps.setArray(3, c.createArrayOf("text", tokens));
            ps.setArray(4, c.createArrayOf("timestamptz", since));
            ps.setArray(5, c.createArrayOf("text", reasons));
            List<String> cleared = new ArrayList<>();
            try (ResultSet rs = ps.executeQuery()) {
                while (rs.next()) {
                    cleared.add(rs.getString(1));
                }
            }
            return cleared;
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
