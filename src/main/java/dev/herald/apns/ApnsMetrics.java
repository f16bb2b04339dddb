package dev.herald.apns;

import java.util.List;

import dev.herald.delivery.PushResult;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;

import java.util.Set;
import java.util.concurrent.TimeUnit;

/**
 * The sender's meters: {@code herald.push.results} counted by {@code gateway=apns}, {@code app},
 * {@code outcome} and {@code reason}, and {@code herald.push.latency} (from {@code send} to its outcome,
 * time queued behind the in-flight limit included) by {@code gateway=apns} and {@code app}.
 *
 * <p>Tags are bounded: {@code reason} is one of APNs' documented reasons or one of Herald's own
 * ({@code none}, {@code connection}, {@code circuit_open}, ...); anything else a gateway answers is
 * counted as {@code other}. Never a token. Thread-safe.
 */
final class ApnsMetrics {

    /** APNs' reasons, from https://developer.apple.com/documentation/usernotifications/handling-notification-responses-from-apns */
    private static final Set<String> APNS_REASONS = Set.of(
            "BadCollapseId", "BadDeviceToken", "BadExpirationDate", "BadMessageId", "BadPriority", "BadTopic",
            "DeviceTokenNotForTopic", "DuplicateHeaders", "IdleTimeout", "InvalidPushType", "MissingDeviceToken",
            "MissingTopic", "PayloadEmpty", "TopicDisallowed", "BadCertificate", "BadCertificateEnvironment",
            "ExpiredProviderToken", "Forbidden", "InvalidProviderToken", "MissingProviderToken",
            "UnrelatedKeyIdInToken", "BadEnvironmentKeyInToken", "BadPath", "MethodNotAllowed", "ExpiredToken",
            "Unregistered", "PayloadTooLarge", "TooManyProviderTokenUpdates", "TooManyRequests",
            "InternalServerError", "ServiceUnavailable", "Shutdown");
    /** Herald's own reasons (GatewayGuard's included). */
    private static final Set<String> HERALD_REASONS = Set.of(
            "none", "connection", "circuit_open", "send_failed", "bad_credentials", "closed");

    private final MeterRegistry meters;
    private final java.util.Map<java.util.List<String>, io.micrometer.core.instrument.Counter> counters =
            new java.util.concurrent.ConcurrentHashMap<>();
    private final java.util.Map<String, Timer> timers = new java.util.concurrent.ConcurrentHashMap<>();

    ApnsMetrics(MeterRegistry meters) {
        this.meters = meters;
    }

    void record(String app, PushResult result, long elapsedNanos) {
        String outcome = result.outcomeTag();
        String reason = result.reasonTag();
        // looked up once per tag set: a registry lookup sorts and hashes tags, too much per push
        counters.computeIfAbsent(List.of(app, outcome, bounded(reason)), k -> meters.counter("herald.push.results",
                "gateway", "apns", "app", k.get(0), "outcome", k.get(1), "reason", k.get(2))).increment();
        timers.computeIfAbsent(app, a -> Timer.builder("herald.push.latency").tags("gateway", "apns", "app", a)
                .register(meters)).record(elapsedNanos, TimeUnit.NANOSECONDS);
    }

    static String bounded(String reason) {
        return APNS_REASONS.contains(reason) || HERALD_REASONS.contains(reason) ? reason : "other";
    }
}
