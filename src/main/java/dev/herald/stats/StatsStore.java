package dev.herald.stats;

import io.micronaut.data.jdbc.runtime.JdbcOperations;
import io.micronaut.serde.annotation.Serdeable;
import io.micronaut.transaction.annotation.Transactional;
import jakarta.inject.Singleton;

import java.sql.ResultSet;
import java.sql.Timestamp;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;

/**
 * Delivery counters, by the status each delivery ended in (one that moved on from a counted status,
 * sent to delivered say, left the old count in the minute it had joined it). The {@code deliveries}
 * triggers append each statement's counts to
 * {@code stats_deltas}; {@link #compact} folds them into per-minute, per-hour and per-day rows (UTC), so
 * reading 30 days of a busy app in day buckets reads 30 rows per channel and status.
 */
@Singleton
class StatsStore {

    /** Rows that count deliveries (the others count calls and removed tokens). */
    private static final String DELIVERIES = "channel NOT IN ('" + StatsCounter.CALL + "', '" + StatsCounter.TOKEN + "')";

    private final JdbcOperations jdbc;

    StatsStore(JdbcOperations jdbc) {
        this.jdbc = jdbc;
    }

    /**
     * Folds every counted delta into the three tables and removes it, in one statement; answers how
     * many deltas it folded, or -1 when another node is compacting right now.
     */
    @Transactional
    int compact() {
        boolean mine = jdbc.prepareStatement("SELECT pg_try_advisory_xact_lock(hashtext('herald.stats'))", ps -> {
            try (ResultSet rs = ps.executeQuery()) {
                rs.next();
                return rs.getBoolean(1);
            }
        });
        if (!mine) {
            return -1;
        }
        return jdbc.prepareStatement("""
                WITH d AS (DELETE FROM stats_deltas RETURNING app_id, minute, channel, status, reason, count),
                sums AS (SELECT d.app_id, d.minute, d.channel, d.status, d.reason, sum(d.count) AS count, count(*) AS deltas
                         FROM d JOIN apps a ON a.id = d.app_id GROUP BY 1, 2, 3, 4, 5),
                m AS (INSERT INTO stats_minute SELECT app_id, minute, channel, status, reason, count FROM sums
                      ON CONFLICT (app_id, t, channel, status, reason) DO UPDATE SET count = stats_minute.count + excluded.count),
                h AS (INSERT INTO stats_hour
                      SELECT app_id, date_trunc('hour', minute, 'UTC'), channel, status, reason, sum(count) FROM sums
                      GROUP BY 1, 2, 3, 4, 5
                      ON CONFLICT (app_id, t, channel, status, reason) DO UPDATE SET count = stats_hour.count + excluded.count),
                dd AS (INSERT INTO stats_day
                      SELECT app_id, date_trunc('day', minute, 'UTC'), channel, status, reason, sum(count) FROM sums
                      GROUP BY 1, 2, 3, 4, 5
                      ON CONFLICT (app_id, t, channel, status, reason) DO UPDATE SET count = stats_day.count + excluded.count)
                SELECT coalesce(sum(deltas), 0) FROM sums""", ps -> {
            try (ResultSet rs = ps.executeQuery()) {
                rs.next();
                return rs.getInt(1);
            }
        });
    }

    /** Forgets minute rows before {@code minutesBefore} and hour rows before {@code hoursBefore}. */
    @Transactional
    int forget(Instant minutesBefore, Instant hoursBefore) {
        int minutes = jdbc.prepareStatement("DELETE FROM stats_minute WHERE t < ?", ps -> {
            ps.setTimestamp(1, Timestamp.from(minutesBefore));
            return ps.executeUpdate();
        });
        int hours = jdbc.prepareStatement("DELETE FROM stats_hour WHERE t < ?", ps -> {
            ps.setTimestamp(1, Timestamp.from(hoursBefore));
            return ps.executeUpdate();
        });
        return minutes + hours;
    }

    /** One bucket's count of deliveries that reached a status on a channel. */
    @Serdeable
    record Bucket(Instant t, String channel, String status, long count) {
    }

    /** How many deliveries reached a status for a reason over the whole range. */
    @Serdeable
    record Reason(String channel, String status, String reason, long count) {
    }

    @Transactional
    List<Bucket> buckets(String appId, StatsBucket bucket, Instant from, Instant to) {
        return jdbc.prepareStatement("SELECT t, channel, status, sum(count) FROM " + bucket.table()
                + " WHERE app_id = ? AND t >= ? AND t < ? AND " + DELIVERIES + " GROUP BY 1, 2, 3 HAVING sum(count) <> 0 ORDER BY 1, 2, 3", ps -> {
            ps.setString(1, appId);
            ps.setTimestamp(2, Timestamp.from(bucket.floor(from)));
            ps.setTimestamp(3, Timestamp.from(to));
            List<Bucket> out = new ArrayList<>();
            try (ResultSet rs = ps.executeQuery()) {
                while (rs.next()) {
                    out.add(new Bucket(rs.getTimestamp(1).toInstant(), rs.getString(2), rs.getString(3), rs.getLong(4)));
                }
            }
            return out;
        });
    }

    @Transactional
    List<Reason> reasons(String appId, StatsBucket bucket, Instant from, Instant to) {
        return jdbc.prepareStatement("SELECT channel, status, reason, sum(count) FROM " + bucket.table()
                + " WHERE app_id = ? AND t >= ? AND t < ? AND reason <> '' AND " + DELIVERIES
                + " GROUP BY 1, 2, 3 HAVING sum(count) <> 0 ORDER BY 4 DESC, 1, 2, 3", ps -> {
            ps.setString(1, appId);
            ps.setTimestamp(2, Timestamp.from(bucket.floor(from)));
            ps.setTimestamp(3, Timestamp.from(to));
            List<Reason> out = new ArrayList<>();
            try (ResultSet rs = ps.executeQuery()) {
                while (rs.next()) {
                    out.add(new Reason(rs.getString(1), rs.getString(2), rs.getString(3), rs.getLong(4)));
                }
            }
            return out;
        });
    }

    /** A bucket's count of calls or removed tokens, by status and reason. */
    @Serdeable
    record Event(Instant t, String status, String reason, long count) {
    }

    /** Counts of the non-delivery channel {@code channel} ({@link StatsCounter#CALL} or {@link StatsCounter#TOKEN}). */
    @Transactional
    List<Event> events(String appId, String channel, StatsBucket bucket, Instant from, Instant to) {
        return jdbc.prepareStatement("SELECT t, status, reason, count FROM " + bucket.table()
                + " WHERE app_id = ? AND t >= ? AND t < ? AND channel = ? ORDER BY 1, 2, 3", ps -> {
            ps.setString(1, appId);
            ps.setTimestamp(2, Timestamp.from(bucket.floor(from)));
            ps.setTimestamp(3, Timestamp.from(to));
            ps.setString(4, channel);
            List<Event> out = new ArrayList<>();
            try (ResultSet rs = ps.executeQuery()) {
                while (rs.next()) {
                    out.add(new Event(rs.getTimestamp(1).toInstant(), rs.getString(2), rs.getString(3), rs.getLong(4)));
                }
            }
            return out;
        });
    }
}
