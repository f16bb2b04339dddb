package dev.herald.stats;

import java.time.Duration;
import java.time.Instant;
import java.time.temporal.ChronoUnit;

/** A bucket size of {@code GET /v1/stats}: its table, and the longest range it may be asked for. */
enum StatsBucket {
    MINUTE("stats_minute", ChronoUnit.MINUTES, Duration.ofDays(1)),
    HOUR("stats_hour", ChronoUnit.HOURS, Duration.ofDays(31)),
    DAY("stats_day", ChronoUnit.DAYS, Duration.ofDays(400));

    private final String table;
    private final ChronoUnit unit;
    private final Duration longestRange;

    StatsBucket(String table, ChronoUnit unit, Duration longestRange) {
        this.table = table;
        this.unit = unit;
        this.longestRange = longestRange;
    }

    String table() {
        return table;
    }

    Duration longestRange() {
        return longestRange;
    }

    /** The start of the bucket holding {@code t} (UTC). */
    Instant floor(Instant t) {
        return t.truncatedTo(unit);
    }

    String wire() {
        return name().toLowerCase(java.util.Locale.ROOT);
    }
}
