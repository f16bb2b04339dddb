package dev.herald.calls;

import dev.herald.apns.ApnsSender;
import dev.herald.delivery.AppGateways;
import dev.herald.delivery.GatewayCredentials;
import dev.herald.delivery.Push;
import dev.herald.delivery.PushContent;
import dev.herald.delivery.PushResult;
import dev.herald.delivery.PushSender;
import dev.herald.devices.Platform;
import dev.herald.fcm.FcmSender;
import io.micronaut.context.annotation.Value;
import io.micronaut.core.annotation.Nullable;
import jakarta.annotation.PreDestroy;
import jakarta.inject.Singleton;

import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;

/**
 * Hands a call's messages to APNs and FCM at once, with no queue in between: every route is sent
 * straight away (ahead of waiting notifications, see {@code GatewayGuard}) and the answer is the
 * gateways' acknowledgements. A gateway's passing failure (429, 5xx, connection loss) is tried again
 * after 50 ms, 100 ms, … (never before its {@code Retry-After}) while the deadline allows; a route with
 * no acknowledgement by the deadline is {@code failed} / {@code timeout}. Never blocks the calling
 * thread except to read an app's credentials on a cache miss.
 */
@Singleton
class CallRinger {

    /** What became of one route's message. {@code deadSince}: the token is dead (since then). */
    record Outcome(String status, @Nullable String reason, @Nullable Instant deadSince) {

        static Outcome suppressed(String reason) {
            return new Outcome("suppressed", reason, null);
        }

        boolean tokenDead() {
            return deadSince != null;
        }
    }

    private static final Duration FIRST_RETRY = Duration.ofMillis(50);

    private final ApnsSender apns;
    private final FcmSender fcm;
    private final AppGateways gateways;
    private final Clock clock;
    private final Duration deadline;
    private final ScheduledExecutorService retries = Executors.newSingleThreadScheduledExecutor(r -> {
        Thread t = new Thread(r, "call-retries");
        t.setDaemon(true);
        return t;
    });

    CallRinger(ApnsSender apns, FcmSender fcm, AppGateways gateways, Clock clock,
               @Value("${herald.calls.deadline:5s}") Duration deadline) {
        this.apns = apns;
        this.fcm = fcm;
        this.gateways = gateways;
        this.clock = clock;
        this.deadline = deadline;
    }

    /** Whether the app has credentials for the platform's gateway. */
    boolean configured(String appId, Platform platform) {
        return gateways.credentials(appId, platform).isPresent();
    }

    /**
     * Sends {@code content} on each route (all at once); answers the outcomes in the routes' order once
     * every gateway answered or the deadline passed. Routes without a token are answered without sending.
     */
    CompletableFuture<List<Outcome>> send(String appId, List<CallStore.Route> routes, PushContent content, String event,
                                         String callId) {
        return all(sendEach(appId, routes, content, event, callId));
    }

    /** {@link #send}, answering each route's outcome as it comes. */
    List<CompletableFuture<Outcome>> sendEach(String appId, List<CallStore.Route> routes, PushContent content,
                                              String event, String callId) {
        long deadlineNanos = System.nanoTime() + deadline.toNanos();
        List<CompletableFuture<Outcome>> sent = new ArrayList<>(routes.size());
        for (CallStore.Route route : routes) {
            sent.add(send(appId, route, content, pushId(appId, callId, route, event), deadlineNanos));
        }
        return sent;
    }

    /** The outcomes, in order, once all are known. */
    static CompletableFuture<List<Outcome>> all(List<CompletableFuture<Outcome>> outcomes) {
        return CompletableFuture.allOf(outcomes.toArray(CompletableFuture[]::new))
                .thenApply(done -> outcomes.stream().map(CompletableFuture::join).toList());
    }

    private CompletableFuture<Outcome> send(String appId, CallStore.Route route, PushContent content, UUID pushId,
                                            long deadlineNanos) {
        Platform platform = Platform.fromWire(route.platform());
        Optional<GatewayCredentials> credentials = gateways.credentials(appId, platform);
        if (credentials.isEmpty()) {
            return CompletableFuture.completedFuture(Outcome.suppressed("not_configured"));
        }
        PushSender sender = platform == Platform.IOS ? apns : fcm;
        Push push = new Push(pushId, route.token(), content);
        CompletableFuture<Outcome> outcome = new CompletableFuture<>();
        attempt(sender, credentials.get(), push, deadlineNanos, 0, outcome);
        return outcome.completeOnTimeout(new Outcome("failed", "timeout", null),
                Math.max(0, deadlineNanos - System.nanoTime()), TimeUnit.NANOSECONDS);
    }

    private void attempt(PushSender sender, GatewayCredentials credentials, Push push, long deadlineNanos, int attempt,
                         CompletableFuture<Outcome> outcome) {
        if (outcome.isDone()) {
            return; // the deadline passed while this retry waited: the route already says timeout
        }
        sender.send(credentials, push).whenComplete((result, failure) -> {
            if (outcome.isDone()) {
                return;
            }
            if (result instanceof PushResult.Retry retry && failure == null) {
                long delay = FIRST_RETRY.toNanos() << Math.min(attempt, 10);
                if (retry.retryAfter() != null) {
                    delay = Math.max(delay, retry.retryAfter().toNanos());
                }
                if (System.nanoTime() + delay < deadlineNanos) {
                    retries.schedule(() -> attempt(sender, credentials, push, deadlineNanos, attempt + 1, outcome),
                            delay, TimeUnit.NANOSECONDS);
                    return;
                }
            }
            outcome.complete(outcome(failure == null ? result : new PushResult.Retry("send_failed", null)));
        });
    }

    private Outcome outcome(PushResult result) {
        if (result instanceof PushResult.Accepted) {
            return new Outcome("sent", null, null);
        }
        if (result instanceof PushResult.TokenInvalid invalid) {
            return new Outcome("failed", invalid.reason(),
                    invalid.invalidSince() == null ? clock.instant() : invalid.invalidSince());
        }
        return new Outcome("failed", result.reasonTag(), null);
    }

    /**
     * The push's id (APNs {@code apns-id}): derived from the call, the route's device and the event, so a
     * message sent again is recognisable as the same one (also when a call rang from memory before its
     * routes were numbered).
     */
    static UUID pushId(String appId, String callId, CallStore.Route route, String event) {
        String device = route.installationId() != null ? route.installationId() : "#" + route.seq();
        return UUID.nameUUIDFromBytes((appId + "/" + callId + "/" + device + "/" + event)
                .getBytes(java.nio.charset.StandardCharsets.UTF_8));
    }

    @PreDestroy
    void close() {
        retries.shutdownNow();
    }
}
