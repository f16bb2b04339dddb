package dev.herald.notifications;

import com.fasterxml.jackson.databind.JsonNode;
import dev.herald.api.ApiException;
import dev.herald.api.JsonBodies;
import dev.herald.api.ProblemType;
import dev.herald.apns.ApnsPayloads;
import dev.herald.auth.Caller;
import dev.herald.fcm.FcmPayloads;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.MeterRegistry;
import io.micronaut.core.annotation.Nullable;
import jakarta.inject.Singleton;

import java.time.Clock;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executor;
import java.util.regex.Pattern;

/**
 * Accepting a notification, wherever it came from ({@code POST /v1/notifications} or the Redis stream
 * {@code herald:requests}): the same validation, the same 413 for payloads a gateway would refuse, the
 * same idempotency, and a future that completes once the notification is committed. Refusals are
 * {@link ApiException}s, thrown before anything is stored or completing the future.
 */
@Singleton
public class NotificationIntake {

    /** Printable ASCII, as Stripe's keys: a UUID or anything the caller derives from its own ids. */
    private static final Pattern IDEMPOTENCY_KEY = Pattern.compile("[\\x21-\\x7e]{1,255}");

    private final AcceptWriter writer;
    private final JsonBodies bodies;
    private final Clock clock;
    private final MeterRegistry meters;
    /** {@code herald.notifications.accepted} by app and target kind, looked up once each. */
    private final Map<String, Counter[]> acceptedCounters = new ConcurrentHashMap<>();

    NotificationIntake(AcceptWriter writer, JsonBodies bodies, Clock clock, MeterRegistry meters) {
        this.writer = writer;
        this.bodies = bodies;
        this.clock = clock;
        this.meters = meters;
    }

    /**
     * Validates and stores one notification of the key's app; {@code idempotencyField} names the
     * idempotency key in errors (a header over HTTP, a field in a stream entry). The answer completes on
     * {@code answerOn} (the request's event loop) when given.
     */
    public CompletableFuture<NotificationService.Accepted> accept(Caller.AppKey key, byte[] body,
                                                                  @Nullable String idempotencyKey, String idempotencyField,
                                                                  @Nullable Executor answerOn) {
        return store(check(key, body, idempotencyKey, idempotencyField), answerOn);
    }

    /**
     * Everything {@link #accept} checks before it stores anything: the notification, parsed and ready to
     * store, or the {@link ApiException} refusing it.
     */
    NotificationService.Incoming check(Caller.AppKey key, byte[] body, @Nullable String idempotencyKey,
                                       String idempotencyField) {
        if (idempotencyKey != null && !IDEMPOTENCY_KEY.matcher(idempotencyKey).matches()) {
            throw ApiException.invalid(idempotencyField, "must be 1 to 255 printable ASCII characters");
        }
        JsonNode node = bodies.validate(body, "notification-request");
        Instant now = clock.instant();
        NotificationRequest request = NotificationRequests.parse(node, now);
        checkPayloadSizes(request, now);
        return new NotificationService.Incoming(key, node, request, idempotencyKey, now);
    }

    /** Stores a notification {@link #check} let through; the future completes (on {@code answerOn}) once it committed. */
    CompletableFuture<NotificationService.Accepted> store(NotificationService.Incoming incoming,
                                                          @Nullable Executor answerOn) {
        return writer.submit(incoming, answerOn).thenApply(accepted -> {
            if (!accepted.replay()) {
                accepted(incoming.key().appId(), incoming.request().target().kind()).increment();
            }
            return accepted;
        });
    }

    private Counter accepted(String appId, Target.Kind kind) {
        Counter[] byKind = acceptedCounters.computeIfAbsent(appId, app -> new Counter[Target.Kind.values().length]);
        Counter counter = byKind[kind.ordinal()];
        if (counter == null) { // two threads may both look it up: the registry answers both with the same counter
            counter = meters.counter("herald.notifications.accepted", "app", appId, "target", kind.wire());
            byKind[kind.ordinal()] = counter;
        }
        return counter;
    }

    /** 413 when any recipient's APNs or FCM payload would be over the gateway's limit. */
    private static void checkPayloadSizes(NotificationRequest request, Instant now) {
        Instant expiresAt = now.plusSeconds(request.ttlSeconds());
        int apns = ApnsPayloads.size(request.largestPush(ApnsPayloads::size, expiresAt));
        if (apns > ApnsPayloads.MAX_PAYLOAD_BYTES) {
            throw new ApiException(ProblemType.PAYLOAD_TOO_LARGE, "The APNs payload would be " + apns
                    + " bytes; APNs takes at most " + ApnsPayloads.MAX_PAYLOAD_BYTES, List.of(), Map.of());
        }
        int fcm = FcmPayloads.size(request.largestPush(FcmPayloads::size, expiresAt));
        if (fcm > FcmPayloads.MAX_PAYLOAD_BYTES) {
            throw new ApiException(ProblemType.PAYLOAD_TOO_LARGE, "The FCM payload would be " + fcm
                    + " bytes; FCM takes at most " + FcmPayloads.MAX_PAYLOAD_BYTES, List.of(), Map.of());
        }
    }
}
