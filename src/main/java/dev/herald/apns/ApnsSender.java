package dev.herald.apns;

import com.eatthepath.pushy.apns.DeliveryPriority;
import com.eatthepath.pushy.apns.PushNotificationResponse;
import com.eatthepath.pushy.apns.PushType;
import com.eatthepath.pushy.apns.util.SimpleApnsPushNotification;
import dev.herald.delivery.GatewayCredentials;
import dev.herald.delivery.Priority;
import dev.herald.delivery.Push;
import dev.herald.delivery.PushContent;
import dev.herald.delivery.PushResult;
import dev.herald.delivery.PushSender;
import io.micrometer.core.instrument.MeterRegistry;
import jakarta.annotation.PreDestroy;
import jakarta.inject.Singleton;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.nio.charset.StandardCharsets;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.CompletableFuture;

/**
 * Sends pushes through APNs with pushy, using each app's token-auth key ({@code .p8}).
 *
 * <p>Contract, beyond {@link PushSender}'s: one long-lived client per (app, credentials version) for
 * notifications and one for calls (VoIP pushes), each built on its first push (the only work
 * {@link #send} does on the calling thread: parsing the key and building a TLS context, once per version)
 * and replaced when the version moves forward. At most {@code herald.apns.max-in-flight} pushes per
 * client are with APNs at once, behind a circuit breaker of its own.
 * The returned futures complete on the sender's Netty event loop: callers must not block in their
 * continuations (use the {@code *Async} variants).
 *
 * <p>Outcomes: accepted → {@code Accepted(apns-id)}; {@code Unregistered}, {@code BadDeviceToken},
 * {@code ExpiredToken} → {@code TokenInvalid} (with APNs' invalidation time for {@code Unregistered});
 * 429, 5xx and {@code Shutdown} → {@code Retry}; a failure to send (no connection, TLS, timeout) →
 * {@code Retry("connection")}; every other rejection → {@code Rejected(reason)}, as are unusable
 * credentials ({@code bad_credentials}) and a payload over APNs' limit ({@code PayloadTooLarge}, not sent).
 * See <a href="https://developer.apple.com/documentation/usernotifications/handling-notification-responses-from-apns">
 * Handling notification responses from APNs</a>.
 *
 * <p>Thread-safe. {@link #close()} is idempotent; pushes after it are answered {@code Retry("closed")}.
 */
@Singleton
public class ApnsSender implements PushSender {

    private static final Logger LOG = LoggerFactory.getLogger(ApnsSender.class);
    private static final Set<String> TOKEN_INVALID = Set.of("Unregistered", "BadDeviceToken", "ExpiredToken");
    private static final Set<String> RETRY = Set.of("TooManyRequests", "InternalServerError", "ServiceUnavailable", "Shutdown");

    private final ApnsClients clients;
    private final ApnsMetrics metrics;

    public ApnsSender(ApnsConfiguration config, MeterRegistry meters) {
        this.clients = new ApnsClients(config);
        this.metrics = new ApnsMetrics(meters);
    }

    @Override
    public void onRecovered(java.util.function.Consumer<String> listener) {
        clients.onRecovered(listener);
    }

    @Override
    public CompletableFuture<PushResult> send(GatewayCredentials credentials, Push push) {
        long started = System.nanoTime();
        CompletableFuture<PushResult> outcome;
        try {
            outcome = dispatch(credentials, push);
        } catch (RuntimeException e) {
            LOG.warn("APNs push {} for app {} could not be sent: {}", push.deliveryId(), credentials.appId(), e.toString());
            outcome = CompletableFuture.completedFuture(new PushResult.Retry("send_failed", null));
        }
        return outcome.handle((result, failure) -> {
            PushResult answer = failure == null ? result : new PushResult.Retry("connection", null);
            metrics.record(credentials.appId(), answer, System.nanoTime() - started);
            LOG.debug("APNs push {} for app {}: {}", push.deliveryId(), credentials.appId(), answer);
            return answer;
        });
    }

    private CompletableFuture<PushResult> dispatch(GatewayCredentials credentials, Push push) {
        PushContent content = push.content();
        ApnsClients.Slot slot = clients.slotFor(credentials, content.urgent());
        if (slot instanceof ApnsClients.Closed) {
            return CompletableFuture.completedFuture(new PushResult.Retry("closed", null));
        }
        if (!(slot instanceof ApnsClients.Ready ready)) {
            return CompletableFuture.completedFuture(new PushResult.Rejected("bad_credentials"));
        }
        String payload = ApnsPayloads.payload(content);
        if (payload.getBytes(StandardCharsets.UTF_8).length > ApnsPayloads.maxBytes(content.kind())) {
            return CompletableFuture.completedFuture(new PushResult.Rejected("PayloadTooLarge"));
        }
        SimpleApnsPushNotification notification = notification(push, ready.bundleId(), payload);
        return ready.guard().call(() -> {
            // a push that waited in the guard goes out on the app's client of now, should the one of
            // the moment it was queued have been replaced (lost its connection) meanwhile
            ApnsClients.Ready now = clients.current(credentials.appId(), content.urgent())
                    .filter(r -> r.guard() == ready.guard()).orElse(ready);
            return now.client().sendNotification(notification).handle((response, failure) -> {
                if (failure == null) {
                    now.answered();
                    return outcome(response, push);
                }
                now.connectionLost();
                return new PushResult.Retry("connection", null);
            });
        }, content.urgent());
    }

    /**
     * The request for one push: topic {@code bundleId} ({@code bundleId.voip} for VoIP), priority 10 for
     * {@code HIGH} and VoIP, 5 for {@code NORMAL} and always for background pushes (APNs refuses a
     * background push at 10), see
     * <a href="https://developer.apple.com/documentation/usernotifications/sending-notification-requests-to-apns">
     * Sending notification requests to APNs</a>.
     */
    static SimpleApnsPushNotification notification(Push push, String bundleId, String payload) {
        PushContent c = push.content();
        PushType type = switch (c.kind()) {
            case ALERT -> PushType.ALERT;
            case BACKGROUND -> PushType.BACKGROUND;
            case VOIP -> PushType.VOIP;
        };
        DeliveryPriority priority = switch (c.kind()) {
            case ALERT -> c.priority() == Priority.HIGH ? DeliveryPriority.IMMEDIATE : DeliveryPriority.CONSERVE_POWER;
            case BACKGROUND -> DeliveryPriority.CONSERVE_POWER;
            case VOIP -> DeliveryPriority.IMMEDIATE;
        };
        String topic = type == PushType.VOIP ? bundleId + ".voip" : bundleId;
        return new SimpleApnsPushNotification(push.token(), topic, payload, c.expiresAt(), priority, type,
                c.collapseKey(), push.deliveryId());
    }

    static PushResult outcome(PushNotificationResponse<?> response, Push push) {
        if (response.isAccepted()) {
            return new PushResult.Accepted(Objects.requireNonNullElse(response.getApnsId(), push.deliveryId()).toString());
        }
        int status = response.getStatusCode();
        String reason = response.getRejectionReason().orElse("status_" + status);
        if (TOKEN_INVALID.contains(reason)) {
            return new PushResult.TokenInvalid(reason, response.getTokenInvalidationTimestamp().orElse(null));
        }
        if (RETRY.contains(reason) || status == 429 || status >= 500) {
            return new PushResult.Retry(reason, null);
        }
        return new PushResult.Rejected(reason);
    }

    /** Closes every client (pushes in flight get a few seconds to finish) and the event loops. Idempotent. */
    @PreDestroy
    @Override
    public void close() {
        clients.close();
    }
}
