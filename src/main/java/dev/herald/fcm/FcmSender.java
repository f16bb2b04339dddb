package dev.herald.fcm;

import com.google.firebase.internal.ApiClientUtils;
import dev.herald.delivery.GatewayCredentials;
import dev.herald.delivery.Push;
import dev.herald.delivery.PushResult;
import dev.herald.delivery.PushSender;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import io.micronaut.context.annotation.Value;
import jakarta.annotation.PreDestroy;
import jakarta.inject.Inject;
import jakarta.inject.Singleton;

import java.time.Clock;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Sends pushes to Android devices through FCM HTTP v1, with firebase-admin's credentials and message model.
 *
 * <p>One client per app, built on the first push from the app's {@code fcm} credentials (parsing the key is the only
 * work done on the caller's thread) and replaced, the old FirebaseApp deleted, when a push carries newer credentials
 * (a push with older ones uses the current client). Each has its own {@code GatewayGuard}:
 * {@code herald.fcm.max-in-flight} pushes with FCM at once, the circuit open for 5 s when most answers are
 * {@code Retry}. All clients share the HTTP/2 connections of one {@link FcmEndpoint}, one per core;
 * {@code herald.fcm.url} sends them to a relay or a test endpoint instead of {@code https://fcm.googleapis.com}.
 *
 * <p>Per {@link PushSender}: {@link #send} never blocks and never completes exceptionally; a push is never retried
 * here ({@link PushResult.Retry} carries FCM's {@code Retry-After} back to Herald's own retry). Its future usually
 * completes on an HTTP I/O thread: what depends on it must not block. Metrics: counter {@code herald.push.results}
 * ({@code gateway=fcm, app, outcome, reason}) and timer {@code herald.push.latency} ({@code gateway=fcm, app}) for
 * the exchanges with FCM. Tokens and keys are never logged or tagged.
 */
@Singleton
public final class FcmSender implements PushSender {

    private static final String CLOSED = "closed";
    private static final long CLOSE_GRACE_NANOS = TimeUnit.SECONDS.toNanos(3);

    private final String name = "herald-fcm-" + UUID.randomUUID().toString().substring(0, 8);
    private final Map<String, FcmClient> clients = new ConcurrentHashMap<>();
    private volatile java.util.function.Consumer<String> recovered = appId -> { };
    private final Map<String, Counter> counters = new ConcurrentHashMap<>();
    private final Map<String, Timer> timers = new ConcurrentHashMap<>();
    private final AtomicBoolean closed = new AtomicBoolean();
    private final MeterRegistry registry;
    private final ExecutorService executor;
    private final FcmApp.Deps deps;

    /**
     * @param url         base URL standing for {@code https://fcm.googleapis.com}; empty for Google's
     * @param maxInFlight pushes with FCM at once per app
     */
    @Inject
    public FcmSender(@Value("${herald.fcm.url:}") String url,
                     @Value("${herald.fcm.max-in-flight:1000}") int maxInFlight,
                     MeterRegistry registry, Clock clock) {
        this.registry = registry;
        this.executor = executor();
        FcmEndpoint endpoint = new FcmEndpoint(url, Math.max(2, Runtime.getRuntime().availableProcessors()));
        this.deps = new FcmApp.Deps(endpoint, executor,
                new FcmOutcomes(ApiClientUtils.getDefaultJsonFactory(), clock), clock, maxInFlight,
                appId -> recovered.accept(appId));
    }

    @Override
    public void onRecovered(java.util.function.Consumer<String> listener) {
        recovered = listener;
    }

    @Override
    public CompletableFuture<PushResult> send(GatewayCredentials credentials, Push push) {
        String appId = credentials.appId();
        CompletableFuture<PushResult> result;
        FcmClient client = closed.get() ? null : clientFor(credentials);
        if (client == null) {
            result = CompletableFuture.completedFuture(new PushResult.Retry(CLOSED, null));
        } else if (client instanceof FcmApp app) {
            Timer latency = timers.computeIfAbsent(appId, id -> Timer.builder("herald.push.latency")
                    .tags("gateway", "fcm", "app", id).register(registry));
            result = app.guard().call(() -> {
                long started = System.nanoTime();
                return app.send(push).whenComplete((r, e) -> latency.record(System.nanoTime() - started, TimeUnit.NANOSECONDS));
            }, push.content().urgent());
        } else {
            result = CompletableFuture.completedFuture(new PushResult.Rejected(FcmClient.BadCredentials.REASON));
        }
        return result.thenApply(outcome -> count(appId, outcome));
    }

    /** Deletes every FirebaseApp and closes the connections after pushes in flight finished, or 3 s. Idempotent. */
    @PreDestroy
    @Override
    public void close() {
        if (!closed.compareAndSet(false, true)) {
            return;
        }
        long deadline = System.nanoTime() + CLOSE_GRACE_NANOS;
        while (inFlight() > 0 && System.nanoTime() < deadline && !Thread.currentThread().isInterrupted()) {
            java.util.concurrent.locks.LockSupport.parkNanos(java.util.concurrent.TimeUnit.MILLISECONDS.toNanos(10));
        }
        clients.values().forEach(FcmClient::close);
        clients.clear();
        deps.endpoint().close();
        executor.shutdown();
    }

    /** The app's client for these credentials: the current one unless these are newer. */
    private FcmClient clientFor(GatewayCredentials credentials) {
        FcmClient current = clients.get(credentials.appId());
        if (current != null && !credentials.version().isAfter(current.version())) {
            return current;
        }
        FcmClient client = clients.compute(credentials.appId(), (appId, old) -> {
            if (old != null && !credentials.version().isAfter(old.version())) {
                return old;
            }
            if (old != null) {
                old.close();
            }
            return FcmApp.open(credentials, name + "/" + appId + "@" + credentials.version(), deps);
        });
        if (closed.get()) {
            client.close(); // lost a race with close()
            return null;
        }
        return client;
    }

    private int inFlight() {
        return clients.values().stream().mapToInt(c -> c instanceof FcmApp app ? app.guard().inFlight() : 0).sum();
    }

    private PushResult count(String appId, PushResult outcome) {
        String kind = outcome.outcomeTag();
        String reason = outcome.reasonTag();
        counters.computeIfAbsent(appId + '\n' + kind + '\n' + reason, key -> Counter.builder("herald.push.results")
                .tags("gateway", "fcm", "app", appId, "outcome", kind, "reason", reason)
                .register(registry)).increment();
        return outcome;
    }

    /** Token fetches and refreshes (blocking HTTP to the token endpoint), bounded; never pushes. */
    private static ExecutorService executor() {
        AtomicInteger threads = new AtomicInteger();
        ThreadPoolExecutor pool = new ThreadPoolExecutor(4, 4, 30, TimeUnit.SECONDS, new LinkedBlockingQueue<>(), r -> {
            Thread thread = new Thread(r, "herald-fcm-auth-" + threads.incrementAndGet());
            thread.setDaemon(true);
            return thread;
        });
        pool.allowCoreThreadTimeOut(true);
        return pool;
    }
}
