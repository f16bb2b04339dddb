package dev.herald.stats;

import io.micronaut.data.jdbc.runtime.JdbcOperations;
import jakarta.inject.Singleton;

import java.sql.Timestamp;
import java.time.Instant;
import java.time.temporal.ChronoUnit;

/**
 * Counts what is not a delivery, in the caller's transaction, beside the deliveries the triggers count:
 * calls ({@code call}: {@code rang} or {@code not_rung}, then {@code ended} with the end reason) and
 * tokens a gateway declared dead ({@code token}: {@code push} or {@code voip}, with the gateway's reason).
 * {@code GET /v1/stats} answers them apart from the delivery buckets.
 */
@Singleton
public class StatsCounter {

    /** Channels that are not deliveries. */
    public static final String CALL = "call";
    public static final String TOKEN = "token";

    /**
     * A CTE to append after one named {@code cleared} (columns app_id, reason) that removes dead tokens:
     * counts them. Format with the token kind ({@code push} or {@code voip}).
     */
    public static final String TOKENS_REMOVED = """
            , tokens_counted AS (
                INSERT INTO stats_deltas (app_id, minute, channel, status, reason, count)
                SELECT app_id, date_trunc('minute', clock_timestamp()), 'token', '%s', coalesce(reason, ''), count(*)
                FROM cleared GROUP BY 1, 2, 3, 4, 5)
            """;

    private final JdbcOperations jdbc;

    StatsCounter(JdbcOperations jdbc) {
        this.jdbc = jdbc;
    }

    public void add(String appId, String channel, String status, String reason, Instant at) {
        jdbc.prepareStatement("INSERT INTO stats_deltas (app_id, minute, channel, status, reason, count)"
                + " VALUES (?, ?, ?, ?, ?, 1)", ps -> {
            ps.setString(1, appId);
            ps.setTimestamp(2, Timestamp.from(at.truncatedTo(ChronoUnit.MINUTES)));
            ps.setString(3, channel);
            ps.setString(4, status);
            ps.setString(5, reason == null ? "" : reason);
            return ps.executeUpdate();
        });
    }
}
