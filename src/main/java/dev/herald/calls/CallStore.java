package dev.herald.calls;

import io.micronaut.core.annotation.Nullable;
import io.micronaut.data.jdbc.runtime.JdbcOperations;
import jakarta.inject.Singleton;

import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Timestamp;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Optional;
import java.util.function.Function;

/**
 * Calls and their routes in PostgreSQL. Every method joins the caller's transaction (the callers are
 * {@link CallService}'s transactional steps). A call's key is (app, callId); its advisory lock is what
 * decides, across every node, which request rings and which only answers the call already ringing.
 */
@Singleton
class CallStore {

    private final JdbcOperations jdbc;

    CallStore(JdbcOperations jdbc) {
        this.jdbc = jdbc;
    }

    /** A call as stored. */
    record StoredCall(String appId, String callId, boolean test, String callee, String callerId,
                      @Nullable String callerName, boolean video, int ringSeconds, Instant createdAt, Instant ringUntil,
                      @Nullable Instant endedAt, @Nullable String endReason, @Nullable String missedNotificationId) {

        String status() {
            return endReason == null ? "ringing" : endReason;
        }

        /** This call, ended at {@code at} for {@code reason}. */
        StoredCall endedAt(Instant at, String reason) {
            return new StoredCall(appId, callId, test, callee, callerId, callerName, video, ringSeconds, createdAt,
                    ringUntil, at, reason, missedNotificationId);
        }

        /** This call, with the missed-call notification sent for it. */
        StoredCall withMissedNotification(String notificationId) {
            return new StoredCall(appId, callId, test, callee, callerId, callerName, video, ringSeconds, createdAt,
                    ringUntil, endedAt, endReason, notificationId);
        }
    }

    /**
     * One route of a call: a device, or the callee alone ({@code installationId} null) when they have
     * none. {@code token} is what the call rang (the VoIP token on iOS, the FCM token on Android); null
     * when there was none or the gateway called it dead.
     */
    record Route(int seq, @Nullable String installationId, @Nullable String platform, String channel,
                 @Nullable String token, String status, @Nullable String reason, @Nullable String endStatus,
                 @Nullable String endReason) {

        Route withOutcome(String newStatus, @Nullable String newReason, boolean tokenDead) {
            return new Route(seq, installationId, platform, channel, tokenDead ? null : token, newStatus, newReason,
                    endStatus, endReason);
        }

        Route withEnd(String newStatus, @Nullable String newReason) {
            return new Route(seq, installationId, platform, channel, token, status, reason, newStatus, newReason);
        }
    }

    /** A device of the callee, as read when the call starts. */
    record CalleeDevice(String installationId, String platform, @Nullable String pushToken, @Nullable String voipToken) {
    }

    /** What {@link #start} found: the call rung now ({@code created}), or the one already there. */
    record Started(boolean created, StoredCall call, List<Route> routes) {
    }

    /** The first key of the advisory locks that serialise the posts of one call (the second: its id's hash). */
    private static final int CALL_LOCKS = 0x43414c4c; // "CALL"

    /**
     * Starts the call unless (app, callId) exists. The first round trip takes the call's transaction-level
     * advisory lock (a concurrent post of the same call, on any node, waits there until this transaction
     * ends, then finds the call), then reads whether the call exists and the callee's devices: nothing
     * is written yet, so nothing on the way to ringing waits for the write-ahead log. For a new call,
     * {@code plan} makes the routes from the devices (and may ring them at once); then the call and its
     * routes are inserted. A call already there is answered with its stored routes.
     */
    Started start(StoredCall call, Function<List<CalleeDevice>, List<Route>> plan) {
        List<CalleeDevice> devices = new ArrayList<>();
        boolean exists = jdbc.prepareStatement("""
                SELECT pg_advisory_xact_lock(?, hashtext(? || '/' || ?));
                SELECT c.exists, d.installation_id, d.platform, d.push_token, d.voip_token
                FROM (SELECT EXISTS (SELECT 1 FROM calls WHERE app_id = ? AND call_id = ?) AS exists) AS c
                LEFT JOIN devices d ON NOT c.exists AND d.app_id = ? AND d.user_id = ?
                ORDER BY d.installation_id""", ps -> {
            ps.setInt(1, CALL_LOCKS);
            ps.setString(2, call.appId());
            ps.setString(3, call.callId());
            ps.setString(4, call.appId());
            ps.setString(5, call.callId());
            ps.setString(6, call.appId());
            ps.setString(7, call.callee());
            ps.execute(); // the lock's row first
            if (!ps.getMoreResults()) {
                throw new IllegalStateException("The call's devices were not read");
            }
            boolean found = false;
            try (ResultSet rs = ps.getResultSet()) {
                while (rs.next()) {
                    found = rs.getBoolean(1);
                    if (rs.getString(2) != null) {
                        devices.add(new CalleeDevice(rs.getString(2), rs.getString(3), rs.getString(4), rs.getString(5)));
                    }
                }
            }
            return found;
        });
        if (exists) {
            StoredCall existing = find(call.appId(), call.callId()).orElseThrow();
            return new Started(false, existing, routes(call.appId(), call.callId()));
        }
        List<Route> routes = plan.apply(devices);
        jdbc.prepareStatement("""
                INSERT INTO calls (app_id, call_id, test, callee, caller_id, caller_name, video, ring_seconds,
                                   created_at, ring_until)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""", ps -> {
            ps.setString(1, call.appId());
            ps.setString(2, call.callId());
            ps.setBoolean(3, call.test());
            ps.setString(4, call.callee());
            ps.setString(5, call.callerId());
            ps.setString(6, call.callerName());
            ps.setBoolean(7, call.video());
            ps.setInt(8, call.ringSeconds());
            ps.setTimestamp(9, Timestamp.from(call.createdAt()));
            ps.setTimestamp(10, Timestamp.from(call.ringUntil()));
            return ps.executeUpdate();
        });
        insertRoutes(call, routes);
        return new Started(true, call, routes);
    }

    /**
     * Waits while a post of this call that may already have rung it is still storing it (it holds the
     * call's lock until its commit), so that a device reacting at once to the ring, say declining it,
     * finds the call rather than a 404.
     */
    void awaitStored(String appId, String callId) {
        jdbc.prepareStatement("SELECT pg_advisory_xact_lock_shared(?, hashtext(? || '/' || ?))", ps -> {
            ps.setInt(1, CALL_LOCKS);
            ps.setString(2, appId);
            ps.setString(3, callId);
            ps.execute();
            return null;
        });
    }

    private void insertRoutes(StoredCall call, List<Route> routes) {
        jdbc.prepareStatement("""
                INSERT INTO call_routes (app_id, call_id, seq, installation_id, platform, channel, token, status,
                                         reason, updated_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""", ps -> {
            for (Route r : routes) {
                ps.setString(1, call.appId());
                ps.setString(2, call.callId());
                ps.setInt(3, r.seq());
                ps.setString(4, r.installationId());
                ps.setString(5, r.platform());
                ps.setString(6, r.channel());
                ps.setString(7, r.token());
                ps.setString(8, r.status());
                ps.setString(9, r.reason());
                ps.setTimestamp(10, Timestamp.from(call.createdAt()));
                ps.addBatch();
            }
            ps.executeBatch();
            return null;
        });
    }

    /** Records what the gateways made of the call.incoming routes (a dead token is forgotten with it). */
    void recordRung(String appId, String callId, Collection<Route> routes, Instant now) {
        jdbc.prepareStatement("""
                UPDATE call_routes SET status = ?, reason = ?, token = ?, updated_at = ?
                WHERE app_id = ? AND call_id = ? AND seq = ?""", ps -> {
            for (Route r : routes) {
                ps.setString(1, r.status());
                ps.setString(2, r.reason());
                ps.setString(3, r.token());
                ps.setTimestamp(4, Timestamp.from(now));
                ps.setString(5, appId);
                ps.setString(6, callId);
                ps.setInt(7, r.seq());
                ps.addBatch();
            }
            ps.executeBatch();
            return null;
        });
    }

    /** Records the call.ended messages' outcomes. */
    void recordEnded(String appId, String callId, Collection<Route> routes, Instant now) {
        jdbc.prepareStatement("""
                UPDATE call_routes SET end_status = ?, end_reason = ?, updated_at = ?
                WHERE app_id = ? AND call_id = ? AND seq = ?""", ps -> {
            for (Route r : routes) {
                ps.setString(1, r.endStatus());
                ps.setString(2, r.endReason());
                ps.setTimestamp(3, Timestamp.from(now));
                ps.setString(4, appId);
                ps.setString(5, callId);
                ps.setInt(6, r.seq());
                ps.addBatch();
            }
            ps.executeBatch();
            return null;
        });
    }

    /** Ends a ringing call; empty when it had already ended (or does not exist). */
    Optional<StoredCall> end(String appId, String callId, EndReason reason, Instant now) {
        return jdbc.prepareStatement("""
                UPDATE calls SET ended_at = ?, end_reason = ?
                WHERE app_id = ? AND call_id = ? AND ended_at IS NULL
                RETURNING""" + " " + COLUMNS, ps -> {
            ps.setTimestamp(1, Timestamp.from(now));
            ps.setString(2, reason.wire());
            ps.setString(3, appId);
            ps.setString(4, callId);
            try (ResultSet rs = ps.executeQuery()) {
                return rs.next() ? Optional.of(call(rs)) : Optional.empty();
            }
        });
    }

    /**
     * Ends up to {@code limit} calls whose ring time ran out, with reason {@code timeout}; calls another
     * node is ending at the same moment are skipped, so each is ended (and made a missed call) once.
     */
    List<StoredCall> endTimedOut(Instant now, int limit) {
        return jdbc.prepareStatement("""
                UPDATE calls c SET ended_at = ?, end_reason = 'timeout'
                FROM (SELECT app_id, call_id FROM calls
                      WHERE ended_at IS NULL AND ring_until <= ?
                      ORDER BY ring_until LIMIT ? FOR UPDATE SKIP LOCKED) due
                WHERE c.app_id = due.app_id AND c.call_id = due.call_id AND c.ended_at IS NULL
                RETURNING""" + " " + prefixed("c."), ps -> {
            ps.setTimestamp(1, Timestamp.from(now));
            ps.setTimestamp(2, Timestamp.from(now));
            ps.setInt(3, limit);
            List<StoredCall> ended = new ArrayList<>();
            try (ResultSet rs = ps.executeQuery()) {
                while (rs.next()) {
                    ended.add(call(rs));
                }
            }
            return ended;
        });
    }

    /** Marks the call's routes as having call.ended on its way (replaced by the outcomes once they are known). */
    void markEnding(String appId, String callId, Instant now) {
        jdbc.prepareStatement("""
                UPDATE call_routes SET end_status = 'sending', updated_at = ?
                WHERE app_id = ? AND call_id = ? AND end_status IS NULL""", ps -> {
            ps.setTimestamp(1, Timestamp.from(now));
            ps.setString(2, appId);
            ps.setString(3, callId);
            return ps.executeUpdate();
        });
    }

    /**
     * Calls whose call.ended has been on its way since before {@code before} (the node sending it died),
     * claimed by moving their mark's time to {@code now} so that one node sends them again.
     */
    List<String[]> claimStuckEnds(Instant before, Instant now, int limit) {
        return jdbc.prepareStatement("""
                WITH stuck AS (
                    SELECT DISTINCT app_id, call_id FROM call_routes
                    WHERE end_status = 'sending' AND updated_at < ? LIMIT ?)
                UPDATE call_routes r SET updated_at = ?
                FROM stuck WHERE r.app_id = stuck.app_id AND r.call_id = stuck.call_id
                  AND r.end_status = 'sending' AND r.updated_at < ?
                RETURNING r.app_id, r.call_id""", ps -> {
            ps.setTimestamp(1, Timestamp.from(before));
            ps.setInt(2, limit);
            ps.setTimestamp(3, Timestamp.from(now));
            ps.setTimestamp(4, Timestamp.from(before));
            java.util.Set<List<String>> calls = new java.util.LinkedHashSet<>();
            try (ResultSet rs = ps.executeQuery()) {
                while (rs.next()) {
                    calls.add(List.of(rs.getString(1), rs.getString(2)));
                }
            }
            return calls.stream().map(c -> c.toArray(String[]::new)).toList();
        });
    }

    void setMissedNotification(String appId, String callId, String notificationId) {
        jdbc.prepareStatement("UPDATE calls SET missed_notification_id = ? WHERE app_id = ? AND call_id = ?", ps -> {
            ps.setString(1, notificationId);
            ps.setString(2, appId);
            ps.setString(3, callId);
            return ps.executeUpdate();
        });
    }

    /** The earliest ring end among calls still ringing, if any. */
    Optional<Instant> nextRingEnd() {
        return jdbc.prepareStatement("SELECT min(ring_until) FROM calls WHERE ended_at IS NULL", ps -> {
            try (ResultSet rs = ps.executeQuery()) {
                rs.next();
                Timestamp t = rs.getTimestamp(1);
                return Optional.ofNullable(t).map(Timestamp::toInstant);
            }
        });
    }

    Optional<StoredCall> find(String appId, String callId) {
        return jdbc.prepareStatement("SELECT " + COLUMNS + " FROM calls WHERE app_id = ? AND call_id = ?", ps -> {
            ps.setString(1, appId);
            ps.setString(2, callId);
            try (ResultSet rs = ps.executeQuery()) {
                return rs.next() ? Optional.of(call(rs)) : Optional.empty();
            }
        });
    }

    List<Route> routes(String appId, String callId) {
        return jdbc.prepareStatement("""
                SELECT seq, installation_id, platform, channel, token, status, reason, end_status, end_reason
                FROM call_routes WHERE app_id = ? AND call_id = ? ORDER BY seq""", ps -> {
            ps.setString(1, appId);
            ps.setString(2, callId);
            List<Route> routes = new ArrayList<>();
            try (ResultSet rs = ps.executeQuery()) {
                while (rs.next()) {
                    routes.add(new Route(rs.getInt(1), rs.getString(2), rs.getString(3), rs.getString(4), rs.getString(5),
                            rs.getString(6), rs.getString(7), rs.getString(8), rs.getString(9)));
                }
            }
            return routes;
        });
    }


    /** Marks the call's {@code call.routed} as told; answers false when it already was. */
    boolean tellRouted(String appId, String callId) {
        return jdbc.prepareStatement("UPDATE calls SET routed_told = true WHERE app_id = ? AND call_id = ? AND NOT routed_told",
                ps -> {
                    ps.setString(1, appId);
                    ps.setString(2, callId);
                    return ps.executeUpdate() == 1;
                });
    }

    /** Forgets calls that ended before {@code before}; answers how many. */
    int deleteEndedBefore(Instant before, int limit) {
        return jdbc.prepareStatement("""
                DELETE FROM calls WHERE (app_id, call_id) IN (
                    SELECT app_id, call_id FROM calls WHERE created_at < ? AND ended_at IS NOT NULL LIMIT ?)""", ps -> {
            ps.setTimestamp(1, Timestamp.from(before));
            ps.setInt(2, limit);
            return ps.executeUpdate();
        });
    }

    private static final String COLUMNS = "app_id, call_id, test, callee, caller_id, caller_name, video, ring_seconds, "
            + "created_at, ring_until, ended_at, end_reason, missed_notification_id";

    private static String prefixed(String prefix) {
        return prefix + COLUMNS.replace(", ", ", " + prefix);
    }

    private static StoredCall call(ResultSet rs) throws SQLException {
        Timestamp ended = rs.getTimestamp(11);
        return new StoredCall(rs.getString(1), rs.getString(2), rs.getBoolean(3), rs.getString(4), rs.getString(5),
                rs.getString(6), rs.getBoolean(7), rs.getInt(8), rs.getTimestamp(9).toInstant(),
                rs.getTimestamp(10).toInstant(), ended == null ? null : ended.toInstant(), rs.getString(12),
                rs.getString(13));
    }
}
