package dev.herald.stats;

import io.micronaut.context.annotation.Context;
import io.micronaut.context.annotation.Requires;
import io.micronaut.context.annotation.Value;
import jakarta.annotation.PreDestroy;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;

/**
 * Folds the counted deltas into the statistics tables every {@code herald.stats.compact-every} (5 s), on
 * whichever node gets there first (the others skip that round), so counts show in {@code GET /v1/stats}
 * within seconds. Hourly it forgets minute rows older than 8 days and hour rows older than 400 days;
 * day rows stay.
 */
@Context
@Requires(property = "herald.delivery.enabled", notEquals = "false")
class StatsCompactor implements AutoCloseable {

    private static final Logger LOG = LoggerFactory.getLogger(StatsCompactor.class);
    static final Duration KEEP_MINUTES = Duration.ofDays(8);
    static final Duration KEEP_HOURS = Duration.ofDays(400);

    private final StatsStore store;
    private final Clock clock;
    private final ScheduledExecutorService timer = Executors.newSingleThreadScheduledExecutor(r -> {
        Thread t = new Thread(r, "stats");
        t.setDaemon(true);
        return t;
    });
    private Instant lastForget = Instant.EPOCH;

    StatsCompactor(StatsStore store, Clock clock, @Value("${herald.stats.compact-every:5s}") Duration every) {
        this.store = store;
        this.clock = clock;
        timer.scheduleWithFixedDelay(this::run, every.toMillis(), every.toMillis(), TimeUnit.MILLISECONDS);
    }

    private void run() {
        try {
            store.compact();
            Instant now = clock.instant();
            if (Duration.between(lastForget, now).toHours() >= 1) {
                lastForget = now;
                store.forget(now.minus(KEEP_MINUTES), now.minus(KEEP_HOURS));
            }
        } catch (RuntimeException e) {
            LOG.warn("Statistics not compacted this round (tried again shortly): {}", e.toString());
        }
    }

    @Override
    @PreDestroy
    public void close() {
        timer.shutdownNow();
    }
}
