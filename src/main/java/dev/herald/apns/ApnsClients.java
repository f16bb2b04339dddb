package dev.herald.apns;

import com.eatthepath.pushy.apns.ApnsClient;
import com.eatthepath.pushy.apns.ApnsClientBuilder;
import com.eatthepath.pushy.apns.auth.ApnsSigningKey;
import com.fasterxml.jackson.databind.JsonNode;
import dev.herald.delivery.GatewayCredentials;
import dev.herald.delivery.GatewayGuard;
import io.netty.channel.nio.NioEventLoopGroup;
import io.netty.util.concurrent.DefaultThreadFactory;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.ByteArrayInputStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The long-lived pushy clients of every app: one per (app, credentials version, lane), built on the
 * app's first push and replaced when a newer version comes; each with its own {@link GatewayGuard}. An
 * app has two lanes: its notifications, and its calls (VoIP pushes) on a connection of their own, so a
 * call never waits behind a burst of notifications on an HTTP/2 connection. The notifications' clients
 * share one Netty event loop group and the calls' clients another (one thread, mostly idle, so a call's
 * push is written without waiting behind notification pushes being encoded); both owned here.
 *
 * <p>A replaced client is closed after {@link #GRACE}, so that pushes already queued behind it still go
 * out. Credentials that cannot build a client (a bad key, a missing field) are remembered as
 * {@link Unusable} for that version, with one WARN naming the app and never the key. A version older
 * than the one in use gets the client in use: credentials only move forward.
 *
 * <p>Thread-safe. {@link #close()} is idempotent; afterwards every slot is {@link Closed}.
 */
final class ApnsClients implements AutoCloseable {

    /** How long pushes in flight get to finish when a client closes. */
    static final Duration GRACE = Duration.ofSeconds(4);
    /** How long an open circuit answers pushes without trying APNs: a probe every this often in an outage. */
    private static final Duration GUARD_OPEN_FOR = Duration.ofSeconds(1);
    /**
     * A client that lost its connection is replaced by a new one (the same guard) when this old: pushy
     * waits longer before each reconnection attempt (1 s doubling to 60 s), a new client tries at once,
     * so pushes flow again within a probe of APNs' return rather than up to a minute after it.
     */
    static final Duration RECONNECT_AFTER = Duration.ofSeconds(1);
    private static final Logger LOG = LoggerFactory.getLogger(ApnsClients.class);

    /** What a push can be sent with. */
    sealed interface Slot permits Ready, Unusable, Closed {
    }

    /**
     * A client and its guard; {@code bundleId} is the app's APNs topic; {@code builtAt} (nanoTime) when the
     * client was made, {@code lostSince} when a push first found it without a connection (or lost one)
     * after APNs' last answer, {@code answeredAt} (initially {@code builtAt}) when APNs last answered.
     */
    record Ready(ApnsClient client, GatewayGuard guard, String bundleId, long builtAt, AtomicLong lostSince,
                 AtomicLong answeredAt) implements Slot {

        void connectionLost() {
            long now = System.nanoTime();
            long since = lostSince.get();
            if (since - answeredAt.get() <= 0) {
                // the first loss since the last answer
                lostSince.compareAndSet(since, now);
            }
        }

        void answered() {
            answeredAt.set(System.nanoTime());
        }

        /**
         * Whether the client has been without a connection for {@link #RECONNECT_AFTER}: lost, no answer
         * since, that long ago (and the client at least that old).
         */
        boolean disconnected() {
            long now = System.nanoTime();
            long since = lostSince.get();
            return since - answeredAt.get() > 0 && now - since >= RECONNECT_AFTER.toNanos()
                    && now - builtAt >= RECONNECT_AFTER.toNanos();
        }
    }

    /** These credentials cannot build a client; pushes with them are rejected. */
    record Unusable() implements Slot {
    }

    /** The sender is closed. */
    record Closed() implements Slot {
    }

    /** The app's slot, and the credentials it was built from (a replacement client is built from them). */
    private record Entry(Instant version, Slot slot, GatewayCredentials credentials) {
    }

    /** An app's notifications, or its calls. */
    private record Lane(String appId, boolean calls) {
    }

    private final ApnsConfiguration config;
    private final NioEventLoopGroup group;
    private final NioEventLoopGroup callsGroup;
    private final ConcurrentMap<Lane, Entry> entries = new ConcurrentHashMap<>();
    private final Set<ApnsClient> retiring = ConcurrentHashMap.newKeySet();
    private final AtomicBoolean closed = new AtomicBoolean();
    private volatile java.util.function.Consumer<String> recovered = appId -> { };

    @SuppressWarnings("deprecation") // pushy 0.15 picks its channel classes by the group's class: NIO, epoll or kqueue
    ApnsClients(ApnsConfiguration config) {
        this.config = config;
        this.group = new NioEventLoopGroup(Math.min(2, Runtime.getRuntime().availableProcessors()),
                new DefaultThreadFactory("herald-apns", true));
        this.callsGroup = new NioEventLoopGroup(1, new DefaultThreadFactory("herald-apns-calls", true));
    }

    /**
     * The slot for these credentials in the app's lane for calls or for notifications: the lane's
     * client, built now if it has none for this version.
     */
    Slot slotFor(GatewayCredentials credentials, boolean calls) {
        Lane lane = new Lane(credentials.appId(), calls);
        Entry current = entries.get(lane);
        if (current == null || credentials.version().isAfter(current.version())) {
            current = entries.compute(lane, (key, existing) -> {
                if (closed.get() || existing != null && !credentials.version().isAfter(existing.version())) {
                    return existing;
                }
                if (existing != null && existing.slot() instanceof Ready old) {
                    retire(old.client());
                }
                return new Entry(credentials.version(), build(credentials, calls, null), credentials);
            });
        }
        if (!closed.get() && current != null && current.slot() instanceof Ready ready && ready.disconnected()) {
            Entry stale = current;
            current = entries.compute(lane, (key, existing) -> {
                if (existing != stale || closed.get()) {
                    return existing;
                }
                Slot replacement = build(existing.credentials(), calls, ready.guard());
                if (!(replacement instanceof Ready)) {
                    // could not build one now (no file descriptors in an outage, say): keep the old client
                    ready.answered();
                    return existing;
                }
                retire(ready.client());
                return new Entry(existing.version(), replacement, existing.credentials());
            });
        }
        return closed.get() || current == null ? new Closed() : current.slot();
    }

    /** A client for these credentials in one lane, behind {@code guard} (null: a new one). */
    private Slot build(GatewayCredentials credentials, boolean calls, GatewayGuard guard) {
        try {
            AppKey key = AppKey.from(credentials.block());
            ApnsSigningKey signingKey = ApnsSigningKey.loadFromInputStream(
                    new ByteArrayInputStream(key.privateKey().getBytes(StandardCharsets.UTF_8)), key.teamId(), key.keyId());
            ApnsClientBuilder builder = new ApnsClientBuilder()
                    .setApnsServer(config.hostFor(key.production()), config.port())
                    .setSigningKey(signingKey)
                    .setEventLoopGroup(calls ? callsGroup : group)
                    // a call at a time needs no second connection
                    .setConcurrentConnections(calls ? 1 : config.connections())
                    .setGracefulShutdownTimeout(GRACE);
            if (config.trustedCertificate().isPresent()) {
                builder.setTrustedServerCertificateChain(config.trustedCertificate().get().toFile());
            }
            long built = System.nanoTime();
            GatewayGuard behind = guard != null ? guard
                    : new GatewayGuard("apns-" + credentials.appId() + (calls ? "-calls" : ""), config.maxInFlight(),
                            GUARD_OPEN_FOR,
                            // calls are never queued for a retry: only the notifications' recovery retries
                            calls ? () -> { } : () -> recovered.accept(credentials.appId()));
            return new Ready(builder.build(), behind, key.bundleId(), built, new AtomicLong(built), new AtomicLong(built));
        } catch (UnusableKey e) {
            LOG.warn("APNs credentials of app {} (version {}) are unusable: {}", credentials.appId(), credentials.version(), e.getMessage());
            return new Unusable();
        } catch (Exception e) {
            // the exception's message is not logged: a key parser's message may quote the key
            LOG.warn("APNs credentials of app {} (version {}) are unusable: the client could not be built ({})",
                    credentials.appId(), credentials.version(), e.getClass().getSimpleName());
            return new Unusable();
        }
    }

    /** The current client of the app's lane, if it has one; never builds (safe on an event loop). */
    java.util.Optional<Ready> current(String appId, boolean calls) {
        Entry entry = entries.get(new Lane(appId, calls));
        return entry != null && entry.slot() instanceof Ready ready ? java.util.Optional.of(ready) : java.util.Optional.empty();
    }

    /** Whom to tell the app's id when its APNs circuit closes again after an outage. */
    void onRecovered(java.util.function.Consumer<String> listener) {
        recovered = listener;
    }

    /** Closes a replaced client once the pushes queued behind it had time to go out. */
    private void retire(ApnsClient client) {
        retiring.add(client);
        group.schedule(() -> {
            if (retiring.remove(client)) {
                client.close();
            }
        }, GRACE.toMillis(), TimeUnit.MILLISECONDS);
    }

    /** Closes every client, waiting up to about {@link #GRACE} for pushes in flight, then the event loops. */
    @Override
    public void close() {
        if (!closed.compareAndSet(false, true)) {
            return;
        }
        List<CompletableFuture<Void>> closing = new ArrayList<>();
        entries.values().forEach(entry -> {
            if (entry.slot() instanceof Ready ready) {
                closing.add(ready.client().close());
            }
        });
        retiring.forEach(client -> closing.add(client.close()));
        retiring.clear();
        try {
            CompletableFuture.allOf(closing.toArray(CompletableFuture[]::new))
                    .get(GRACE.toMillis() + 1_000, TimeUnit.MILLISECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } catch (Exception e) {
            LOG.warn("APNs clients did not close within {}: {}", GRACE, e.toString());
        }
        callsGroup.shutdownGracefully(0, 2, TimeUnit.SECONDS);
        group.shutdownGracefully(0, 2, TimeUnit.SECONDS).awaitUninterruptibly(3, TimeUnit.SECONDS);
        callsGroup.terminationFuture().awaitUninterruptibly(3, TimeUnit.SECONDS);
    }

    /** The fields of an app's {@code apns} block that build a client. */
    private record AppKey(String teamId, String keyId, String privateKey, String bundleId, boolean production) {

        static AppKey from(JsonNode block) throws UnusableKey {
            String environment = required(block, "environment");
            if (!environment.equals("sandbox") && !environment.equals("production")) {
                throw new UnusableKey("environment must be sandbox or production");
            }
            return new AppKey(required(block, "teamId"), required(block, "keyId"), required(block, "privateKey"),
                    required(block, "bundleId"), environment.equals("production"));
        }

        private static String required(JsonNode block, String field) throws UnusableKey {
            JsonNode value = block.path(field);
            if (!value.isTextual() || value.asText().isBlank()) {
                throw new UnusableKey("the apns block has no " + field);
            }
            return value.asText();
        }
    }

    /** Credentials that cannot work; the message names what is wrong and never quotes a value. */
    private static final class UnusableKey extends Exception {
        UnusableKey(String message) {
            super(message, null, false, false);
        }
    }
}
