package dev.herald.delivery;

import dev.herald.apns.ApnsSender;
import dev.herald.devices.Platform;
import dev.herald.fcm.FcmSender;
import io.micronaut.context.annotation.Context;
import io.micronaut.context.annotation.Requires;
import jakarta.annotation.PreDestroy;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;

/**
 * When an app's gateway is back after an outage (its circuit closed again), the app's pushes to that
 * platform that were put off by backoff become due within {@link #SPREAD}, so the backlog drains at
 * the gateway's pace rather than over the next minutes of growing retry intervals (up to 10 min), and
 * other apps' pushes are not queued behind it. Never a push in flight (it would go twice), nor one a
 * gateway told to wait ({@code Retry-After}): see {@link DeliveryStore#retryNow}. At most once a lease
 * per app and platform, so a gateway that flaps does not undo backoff. Works on a thread of its own.
 */
@Context
@Requires(property = "herald.delivery.enabled", notEquals = "false")
class RetryOnRecovery implements AutoCloseable {

    private static final Logger LOG = LoggerFactory.getLogger(RetryOnRecovery.class);
    static final Duration SPREAD = Duration.ofSeconds(10);

    private record Gateway(String appId, Platform platform) {
    }

    private final DeliveryStore store;
    private final WorkSignals signals;
    private final Clock clock;
    private final ExecutorService worker = Executors.newSingleThreadExecutor(r -> {
        Thread t = new Thread(r, "retry-on-recovery");
        t.setDaemon(true);
        return t;
    });
    private final Map<Gateway, Boolean> pending = new ConcurrentHashMap<>();
    private final Map<Gateway, Instant> lastDone = new ConcurrentHashMap<>();

    RetryOnRecovery(DeliveryStore store, WorkSignals signals, Clock clock, ApnsSender apns, FcmSender fcm) {
        this.store = store;
        this.signals = signals;
        this.clock = clock;
        apns.onRecovered(appId -> recovered(new Gateway(appId, Platform.IOS)));
        fcm.onRecovered(appId -> recovered(new Gateway(appId, Platform.ANDROID)));
    }

    private void recovered(Gateway gateway) {
        if (pending.putIfAbsent(gateway, Boolean.TRUE) != null) {
            return;
        }
        worker.execute(() -> {
            pending.remove(gateway);
            try {
                Instant now = clock.instant();
                Instant last = lastDone.get(gateway);
                if (last != null && now.isBefore(last.plus(PushWorker.LEASE))) {
                    return;
                }
                lastDone.put(gateway, now);
                int due = store.retryNow(gateway.appId(), gateway.platform(), now, SPREAD);
                if (due > 0) {
                    LOG.info("The {} gateway of app {} is back: {} pushes put off by backoff are due now",
                            gateway.platform().wire(), gateway.appId(), due);
                    signals.wakePushes();
                }
            } catch (RuntimeException e) {
                LOG.warn("Could not bring forward the put-off pushes of app {}; they go at their backoff: {}",
                        gateway.appId(), e.toString());
            }
        });
    }

    @PreDestroy
    @Override
    public void close() {
        worker.shutdownNow();
    }
}
