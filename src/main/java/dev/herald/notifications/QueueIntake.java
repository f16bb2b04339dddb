package dev.herald.notifications;

import dev.herald.api.ApiException;
import dev.herald.api.Problem;
import dev.herald.auth.ApiKeyStore;
import dev.herald.auth.Caller;
import dev.herald.auth.Scope;
import dev.herald.auth.Secrets;
import io.lettuce.core.Consumer;
import io.lettuce.core.RedisBusyException;
import io.lettuce.core.StreamMessage;
import io.lettuce.core.XAddArgs;
import io.lettuce.core.XAutoClaimArgs;
import io.lettuce.core.XGroupCreateArgs;
import io.lettuce.core.XReadArgs;
import io.lettuce.core.cluster.api.sync.RedisClusterCommands;
import dev.herald.redis.Redis;
import io.micrometer.core.instrument.MeterRegistry;
import io.micronaut.context.annotation.Context;
import io.micronaut.context.annotation.Requires;
import io.micronaut.context.annotation.Value;
import jakarta.annotation.PreDestroy;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * Accepts notifications that backends append to the Redis stream {@code herald:requests}
 * ({@code app}, {@code key}, {@code body}, optional {@code idempotencyKey}), read with the consumer group
 * {@code herald} (created at startup when missing, from the stream's start, so entries appended before
 * Herald first ran are read too). Each entry is authenticated by its app key (scope {@code send}, of the
 * named app, not revoked) and accepted exactly as {@code POST /v1/notifications} would; it is
 * acknowledged only once the notification is committed. An entry that cannot be accepted goes to
 * {@code herald:requests:dead} with the reason (never the key) and is acknowledged. While PostgreSQL is
 * unavailable nothing is acknowledged; the entries stay pending and are read again. Entries another
 * consumer left pending for {@code herald.intake.claim-after} (it died) are claimed with XAUTOCLAIM.
 * An entry without an idempotency key is accepted under one derived from its stream id, so an entry
 * read twice (its consumer died after storing it, before acknowledging) is stored once.
 * Runs on one thread of its own, with a connection of its own (its reads block).
 */
@Context
@Requires(property = "herald.intake.enabled", notEquals = "false")
class QueueIntake implements AutoCloseable {

    static final String STREAM = "herald:requests";
    static final String DEAD = "herald:requests:dead";
    static final String GROUP = "herald";
    private static final int BATCH = 100;
    /** Reads of one entry before it counts as poison rather than an outage (an outage is retried longer by then). */
    private static final int MAX_TRIES = 10;
    private static final Logger LOG = LoggerFactory.getLogger(QueueIntake.class);

    private final NotificationIntake intake;
    private final ApiKeyStore keys;
    private final Redis client;
    private final MeterRegistry meters;
    private final Duration claimAfter;
    private final Duration block;
    private final String consumer = "herald-" + UUID.randomUUID().toString().substring(0, 12);
    private final Thread thread;
    private volatile boolean running = true;
    private final dev.herald.ops.OncePerMinute warnings = new dev.herald.ops.OncePerMinute();
    private final dev.herald.delivery.WorkSignal stopping = new dev.herald.delivery.WorkSignal();
    private volatile Redis.Dedicated connection;

    QueueIntake(NotificationIntake intake, ApiKeyStore keys, Redis client, MeterRegistry meters,
                @Value("${herald.intake.claim-after:30s}") Duration claimAfter,
                @Value("${herald.intake.block:1s}") Duration block) {
        this.intake = intake;
        this.keys = keys;
        this.client = client;
        this.meters = meters;
        this.claimAfter = claimAfter;
        this.block = block;
        thread = new Thread(this::loop, "intake");
        thread.setDaemon(true);
        thread.start();
    }

    String consumer() {
        return consumer;
    }

    private void loop() {
        long lastClaim = 0;
        boolean ownPending = true;
        while (running) {
            try {
                RedisClusterCommands<String, String> redis = redis();
                List<StreamMessage<String, String>> entries;
                if (ownPending) {
                    // entries this consumer read but did not acknowledge (the database was away)
                    entries = redis.xreadgroup(Consumer.from(GROUP, consumer), XReadArgs.Builder.count(BATCH),
                            XReadArgs.StreamOffset.from(STREAM, "0"));
                    ownPending = !entries.isEmpty() && handle(redis, entries);
                    if (!entries.isEmpty()) {
                        continue;
                    }
                }
                if (System.nanoTime() - lastClaim > claimAfter.toNanos() / 2) {
                    lastClaim = System.nanoTime();
                    var claimed = redis.xautoclaim(STREAM, XAutoClaimArgs.Builder.xautoclaim(
                            Consumer.from(GROUP, consumer), claimAfter, "0-0").count(BATCH));
                    if (!claimed.getMessages().isEmpty()) {
                        LOG.info("Took over {} stream entries another consumer left pending", claimed.getMessages().size());
                        ownPending = handle(redis, claimed.getMessages());
                        continue;
                    }
                }
                entries = redis.xreadgroup(Consumer.from(GROUP, consumer),
                        XReadArgs.Builder.count(BATCH).block(block), XReadArgs.StreamOffset.lastConsumed(STREAM));
                if (!entries.isEmpty()) {
                    ownPending = handle(redis, entries);
                }
            } catch (RuntimeException e) {
                if (!running) {
                    return;
                }
                if (e.getMessage() != null && e.getMessage().contains("NOGROUP")) {
                    // the stream was deleted: a new connection creates the group again
                    Redis.Dedicated stale = connection;
                    connection = null;
                    if (stale != null) {
                        stale.close();
                    }
                } else if (warnings.due()) {
                    // Redis away: said once a minute, not every second
                    LOG.warn("Reading {} failed; trying again every second: {}", STREAM, e.toString());
                }
                ownPending = true;
                if (!pause(Duration.ofSeconds(1))) {
                    return;
                }
            }
        }
    }

    /** The intake's own connection, with the consumer group made sure of. */
    private RedisClusterCommands<String, String> redis() {
        Redis.Dedicated c = connection;
        if (c == null || !c.isOpen()) {
            if (c != null) {
                c.close();
            }
            connection = null;
            c = client.connect();
            try {
                c.sync().xgroupCreate(XReadArgs.StreamOffset.from(STREAM, "0"), GROUP, XGroupCreateArgs.Builder.mkstream());
                LOG.info("Created the consumer group '{}' of {}", GROUP, STREAM);
            } catch (RedisBusyException exists) {
                // BUSYGROUP: another node (or an earlier run) made it
            } catch (RuntimeException e) {
                c.close();
                throw e;
            }
            connection = c;
        }
        return c.sync();
    }

    /**
     * Accepts a batch of entries (together, so they share commits); acknowledges the stored and the
     * dead-lettered ones. Answers true when some were left pending because the database was unavailable.
     */
    private boolean handle(RedisClusterCommands<String, String> redis, List<StreamMessage<String, String>> entries) {
        List<String> done = new ArrayList<>();
        Map<StreamMessage<String, String>, Failure> failed = new LinkedHashMap<>();
        List<Map.Entry<StreamMessage<String, String>, CompletableFuture<NotificationService.Accepted>>> waiting = new ArrayList<>();
        for (StreamMessage<String, String> entry : entries) {
            try {
                waiting.add(Map.entry(entry, submit(entry)));
            } catch (ApiException refused) {
                if (transient_(refused)) {
                    failed.put(entry, Failure.of(refused));
                    continue;
                }
                dead(redis, entry, reason(refused));
                done.add(entry.getId());
            } catch (RuntimeException e) {
                // the key could not be checked (PostgreSQL away) or something unforeseen: read again
                failed.put(entry, Failure.of(e));
            }
        }
        for (var w : waiting) {
            try {
                NotificationService.Accepted accepted = w.getValue().get(30, TimeUnit.SECONDS);
                meters.counter("herald.intake", "outcome", accepted.replay() ? "replayed" : "accepted").increment();
                done.add(w.getKey().getId());
            } catch (ExecutionException e) {
                if (e.getCause() instanceof ApiException refused && !transient_(refused)) {
                    dead(redis, w.getKey(), reason(refused));
                    done.add(w.getKey().getId());
                } else {
                    failed.put(w.getKey(), Failure.of(e.getCause() == null ? e : e.getCause()));
                }
            } catch (TimeoutException e) {
                failed.put(w.getKey(), new Failure("503 not stored within 30 s", true));
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return true;
            }
        }
        // an entry that failed again and again (a poison entry, not an outage) goes to the dead stream
        // rather than holding up this consumer for ever
        for (var f : List.copyOf(failed.entrySet())) {
            // while PostgreSQL is away every entry waits, however long that takes
            if (!f.getValue().outage() && deliveries(redis, f.getKey().getId()) >= MAX_TRIES) {
                dead(redis, f.getKey(), f.getValue().reason() + " (not stored after " + MAX_TRIES + " tries)");
                done.add(f.getKey().getId());
                failed.remove(f.getKey());
            }
        }
        if (!done.isEmpty()) {
            redis.xack(STREAM, GROUP, done.toArray(String[]::new));
        }
        if (!failed.isEmpty()) {
            LOG.warn("{} stream entries not stored yet, read again shortly (first: {})", failed.size(),
                    failed.values().iterator().next().reason());
            pause(Duration.ofSeconds(1));
        }
        return !failed.isEmpty();
    }

    /** Why an entry was not stored this time; an {@code outage} (PostgreSQL away) is waited out, however long. */
    private record Failure(String reason, boolean outage) {
        static Failure of(Throwable cause) {
            if (cause instanceof ApiException api) {
                return new Failure(QueueIntake.reason(api), transient_(api));
            }
            return new Failure("500 " + cause.getClass().getSimpleName(), dev.herald.api.SqlStates.isUnavailable(cause));
        }
    }

    /** How many times the group delivered the entry (to any consumer). */
    private long deliveries(RedisClusterCommands<String, String> redis, String id) {
        var pending = redis.xpending(STREAM, GROUP, io.lettuce.core.Range.create(id, id), io.lettuce.core.Limit.from(1));
        return pending.isEmpty() ? 0 : pending.get(0).getRedeliveryCount();
    }

    private CompletableFuture<NotificationService.Accepted> submit(StreamMessage<String, String> entry) {
        Map<String, String> fields = entry.getBody();
        String app = fields.get("app");
        String key = fields.get("key");
        String body = fields.get("body");
        if (app == null || key == null || body == null) {
            throw ApiException.invalid(app == null ? "app" : key == null ? "key" : "body", "is required in a stream entry");
        }
        Optional<Caller.AppKey> found = key.startsWith(ApiKeyStore.LIVE_PREFIX) || key.startsWith(ApiKeyStore.TEST_PREFIX)
                ? keys.findActive(Secrets.sha256(key)) : Optional.empty();
        if (found.isEmpty()) {
            throw new ApiException(dev.herald.api.ProblemType.UNAUTHORIZED, "The key is unknown or revoked");
        }
        Caller.AppKey appKey = found.get();
        if (!appKey.appId().equals(app)) {
            throw ApiException.forbidden("The key belongs to another app");
        }
        if (!appKey.scopes().contains(Scope.SEND)) {
            throw ApiException.forbidden("The key lacks the 'send' scope");
        }
        String idempotencyKey = fields.get("idempotencyKey");
        return intake.accept(appKey, body.getBytes(StandardCharsets.UTF_8),
                idempotencyKey != null ? idempotencyKey : STREAM + "/" + entry.getId(), "idempotencyKey", null);
    }

    /** The database is away: the entry waits, unacknowledged. */
    private static boolean transient_(ApiException e) {
        return e.type().status().getCode() == 503;
    }

    private static String reason(ApiException refused) {
        StringBuilder reason = new StringBuilder().append(refused.type().status().getCode()).append(' ')
                .append(refused.getMessage());
        for (Problem.FieldError error : refused.errors()) {
            reason.append("; ").append(error.field()).append(": ").append(error.message());
        }
        return reason.toString();
    }

    private void dead(RedisClusterCommands<String, String> redis, StreamMessage<String, String> entry, String reason) {
        Map<String, String> fields = new LinkedHashMap<>();
        fields.put("reason", reason);
        fields.put("entry", entry.getId());
        putIfPresent(fields, "app", entry.getBody().get("app"));
        putIfPresent(fields, "body", entry.getBody().get("body"));
        putIfPresent(fields, "idempotencyKey", entry.getBody().get("idempotencyKey"));
        redis.xadd(DEAD, XAddArgs.Builder.maxlen(100_000).approximateTrimming(), fields);
        meters.counter("herald.intake", "outcome", "dead").increment();
        LOG.info("Stream entry {} of app {} moved to {}: {}", entry.getId(), entry.getBody().get("app"), DEAD, reason);
    }

    private static void putIfPresent(Map<String, String> fields, String name, String value) {
        if (value != null) {
            fields.put(name, value);
        }
    }

    private boolean pause(Duration duration) {
        try {
            stopping.await(duration);
            return running;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return false;
        }
    }

    @Override
    @PreDestroy
    public void close() {
        running = false;
        stopping.signal();
        thread.interrupt();
        try {
            thread.join(TimeUnit.SECONDS.toMillis(5));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        Redis.Dedicated c = connection;
        if (c != null) {
            c.close();
        }
    }
}
