package dev.herald.devices;

import io.micronaut.scheduling.annotation.Scheduled;
import jakarta.inject.Singleton;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.time.Duration;

/**
 * Drops devices silent for 270 days, FCM's own limit for a stale registration token
 * (https://firebase.google.com/docs/cloud-messaging/manage-tokens). Runs on every node; batches are
 * claimed with SKIP LOCKED so nodes never wait on each other.
 */
@Singleton
public class SilentDeviceCleanup {

    private static final Logger LOG = LoggerFactory.getLogger(SilentDeviceCleanup.class);
    static final Duration SILENCE = Duration.ofDays(270);
    private static final int BATCH = 1_000;

    private final DeviceStore store;

    SilentDeviceCleanup(DeviceStore store) {
        this.store = store;
    }

    @Scheduled(initialDelay = "5m", fixedDelay = "1h")
    public int run() {
        int total = 0;
        int deleted;
        do {
            deleted = store.deleteSilent(SILENCE, BATCH);
            total += deleted;
        } while (deleted == BATCH);
        if (total > 0) {
            LOG.info("Dropped {} devices silent for {} days", total, SILENCE.toDays());
        }
        return total;
    }
}
