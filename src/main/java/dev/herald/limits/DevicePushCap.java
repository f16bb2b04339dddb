package dev.herald.limits;

import dev.herald.ops.OncePerMinute;
import dev.herald.redis.Redis;
import dev.herald.redis.RedisScript;
import io.micronaut.context.annotation.Value;
import jakarta.inject.Singleton;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

/**
 * The cap on pushes per device per minute ({@code herald.limits.device-per-minute}, or an app's own
 * {@code limits.devicePushesPerMinute}), so a backend in a loop cannot flood a phone (and have the
 * gateway throttle the app for it). Counted in Redis, shared by every node, per device and UTC minute
 * (a field per device in one of {@link #BUCKETS} hashes per app and minute, so it spreads over a Redis
 * Cluster too; a batch's commands sent in one write on a connection of the cap's own), as pushes are
 * taken up for sending. Calls are not capped: they do not pass here. Fails open: while Redis does
 * not answer within {@link #REDIS_WAIT}, nothing is capped, and Redis is left alone for
 * {@link #SKIP_AFTER_FAILURE}. Thread-safe; blocks up to {@link #REDIS_WAIT}: call from worker threads.
 */
@Singleton
public class DevicePushCap {

    private static final Logger LOG = LoggerFactory.getLogger(DevicePushCap.class);
    static final Duration REDIS_WAIT = Duration.ofMillis(250);
    static final Duration SKIP_AFTER_FAILURE = Duration.ofSeconds(5);
    private static final long TTL_SECONDS = 120;

    /** One push about to go out: its delivery, its device, and that device's cap (0: none). */
    public record Counted(long deliveryId, String appId, String installationId, int perMinute) {
    }

    private final Redis redis;
    private final Clock clock;
    private final int perMinute;
    /**
     * Devices' counters of a minute are fields of {@code BUCKETS} hashes per app (by installation id):
     * a count is one {@code HINCRBY} on a hash that exists, not a key created with its own time to live.
     */
    static final int BUCKETS = 64;

    /** A device's counter: the hash holding it and its field. */
    private record Device(String key, String installationId) {
    }

    /**
     * The cap's own connection, made on a thread of its own (first use, or again after a failure) so
     * that no caller waits for it longer than {@link #REDIS_WAIT}; one batch at a time goes through it.
     */
    private final Object pipeLock = new Object();
    private CompletableFuture<Redis.Pipelined> pipe;
    private boolean closed;
    private final OncePerMinute warnings = new OncePerMinute();
    private volatile long skipUntil = System.nanoTime();

    DevicePushCap(Redis redis, Clock clock, @Value("${herald.limits.device-per-minute:240}") int perMinute) {
        this.redis = redis;
        this.clock = clock;
        this.perMinute = perMinute;
    }

    /** The deployment's cap, for apps without their own (0: none). */
    public int perMinute() {
        return perMinute;
    }

    /** Counts these pushes; answers the deliveries over their device's cap this minute. Never throws. */
    public Set<Long> over(List<Counted> pushes) {
        long now = System.nanoTime();
        if (now - skipUntil < 0) {
            return Set.of();
        }
        Map<Device, List<Counted>> byDevice = new LinkedHashMap<>();
        long minute = clock.millis() / 60_000;
        for (Counted push : pushes) {
            if (push.perMinute() > 0) {
                String installation = push.installationId();
                String key = "herald:cap:" + push.appId() + ":" + minute + ":" + Math.floorMod(installation.hashCode(), BUCKETS);
                byDevice.computeIfAbsent(new Device(key, installation), k -> new ArrayList<>()).add(push);
            }
        }
        if (byDevice.isEmpty()) {
            return Set.of();
        }
        try {
            Map<List<Counted>, CompletableFuture<Long>> counts = new LinkedHashMap<>();
            Redis.Pipelined connection = connection().get(REDIS_WAIT.toMillis(), TimeUnit.MILLISECONDS);
            synchronized (pipeLock) {
                var async = connection.async();
                Set<String> keys = new HashSet<>();
                byDevice.forEach((device, devicePushes) -> {
                    counts.put(devicePushes, async.hincrby(device.key(), device.installationId(), devicePushes.size())
                            .toCompletableFuture());
                    keys.add(device.key());
                });
                // set again with every batch: a minute's counters outlive their minute
                keys.forEach(key -> async.expire(key, TTL_SECONDS));
                connection.flush();
            }
            CompletableFuture.allOf(counts.values().toArray(CompletableFuture[]::new))
                    .get(REDIS_WAIT.toMillis(), TimeUnit.MILLISECONDS);
            Set<Long> over = new HashSet<>();
            counts.forEach((devicePushes, count) -> {
                // this batch's pushes were numbers count - size + 1 .. count of the minute
                long first = count.join() - devicePushes.size() + 1;
                for (int i = 0; i < devicePushes.size(); i++) {
                    if (first + i > devicePushes.get(i).perMinute()) {
                        over.add(devicePushes.get(i).deliveryId());
                    }
                }
            });
            return over;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return Set.of();
        } catch (Exception e) {
            skipUntil = System.nanoTime() + SKIP_AFTER_FAILURE.toNanos();
            if (warnings.due()) {
                LOG.warn("Per-device push caps not applied while Redis does not answer: {}",
                        RedisScript.unwrap(e).toString());
            }
            return Set.of();
        }
    }

    /** The cap's connection, being made or made (reconnected by lettuce after a loss, as every connection). */
    private CompletableFuture<Redis.Pipelined> connection() {
        synchronized (pipeLock) {
            if (closed) {
                return CompletableFuture.failedFuture(new IllegalStateException("closed"));
            }
            if (pipe == null || pipe.isCompletedExceptionally()) {
                pipe = CompletableFuture.supplyAsync(redis::connectPipelined, task -> {
                    Thread connecting = new Thread(task, "device-cap-connect");
                    connecting.setDaemon(true);
                    connecting.start();
                });
            }
            return pipe;
        }
    }

    @jakarta.annotation.PreDestroy
    void close() {
        synchronized (pipeLock) {
            closed = true;
            if (pipe != null) {
                pipe.thenAccept(Redis.Pipelined::close);
            }
        }
    }
}
