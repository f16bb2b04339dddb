package dev.herald.notifications;

import io.micronaut.scheduling.annotation.Scheduled;
import jakarta.inject.Singleton;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.time.Clock;

/**
 * Forgets {@code Idempotency-Key}s older than their 24 hours (a key used again later is claimed anew
 * anyway; this keeps the table from growing with every keyed request). Runs on every node; deleting
 * what another node already deleted is harmless.
 */
@Singleton
class IdempotencyKeyCleanup {

    private static final Logger LOG = LoggerFactory.getLogger(IdempotencyKeyCleanup.class);

    private final NotificationStore store;
    private final Clock clock;

    IdempotencyKeyCleanup(NotificationStore store, Clock clock) {
        this.store = store;
        this.clock = clock;
    }

    @Scheduled(initialDelay = "5m", fixedDelay = "1h")
    int run() {
        int forgotten = store.forgetOldKeys(clock.instant());
        if (forgotten > 0) {
            LOG.debug("Forgot {} idempotency keys older than 24 hours", forgotten);
        }
        return forgotten;
    }
}
