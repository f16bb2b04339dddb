package dev.herald.delivery;

import dev.herald.apns.ApnsSender;
import dev.herald.fcm.FcmSender;
import io.micronaut.context.annotation.Context;
import io.micronaut.context.annotation.Requires;
import jakarta.annotation.PreDestroy;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.time.Clock;
import java.time.Instant;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;

/**
 * When an app's gateway is back after an outage (its circuit closed again), the app's pushes that
 * were put off by backoff are made due at once, so the backlog drains at the gateway's pace rather
 * than over the next minutes of growing retry intervals (up to 10 min). Only pushes waiting longer
 * than a lease are touched (never one in flight: see {@link DeliveryStore#retryNow}); the rest are
 * due within a minute anyway. At most once a lease per app, so a gateway that flaps does not undo
 * backoff. Works on a thread of its own.
 */
@Context
@Requires(property = "herald.delivery.enabled", notEquals = "false")
class RetryOnRecovery implements AutoCloseable {

    private static final Logger LOG = LoggerFactory.getLogger(RetryOnRecovery.class);

    private final DeliveryStore store;
    private final WorkSignals signals;
    private final Clock clock;
    private final ExecutorService worker = Executors.newSingleThreadExecutor(r -> {
        Thread t = new Thread(r, "retry-on-recovery");
        t.setDaemon(true);
        return t;
    });
    private final Map<String, Boolean> pending = new ConcurrentHashMap<>();
    /** When each app's put-off pushes were last brought forward: a gateway that flaps gets it once a lease. */
    private final Map<String, Instant> lastDone = new ConcurrentHashMap<>();

    RetryOnRecovery(DeliveryStore store, WorkSignals signals, Clock clock, ApnsSender apns, FcmSender fcm) {
        this.store = store;
        this.signals = signals;
        this.clock = clock;
        apns.onRecovered(this::recovered);
        fcm.onRecovered(this::recovered);
    }

    private void recovered(String appId) {
        if (pending.putIfAbsent(appId, Boolean.TRUE) != null) {
            return;
        }
        worker.execute(() -> {
            pending.remove(appId);
            try {
                Instant now = clock.instant();
                Instant last = lastDone.get(appId);
                if (last != null && now.isBefore(last.plus(PushWorker.LEASE))) {
                    return;
                }
                lastDone.put(appId, now);
                int due = store.retryNow(appId, now, now.plus(PushWorker.LEASE));
                if (due > 0) {
                    LOG.info("A gateway of app {} is back: {} pushes put off by backoff are due now", appId, due);
                    signals.wakePushes();
                }
            } catch (RuntimeException e) {
                LOG.warn("Could not bring forward the put-off pushes of app {}; they go at their backoff: {}",
                        appId, e.toString());
            }
        });
    }

    @PreDestroy
    @Override
    public void close() {
        worker.shutdownNow();
    }
}
