package dev.herald.delivery;

import java.time.Duration;
import java.time.Instant;

/**
 * What a gateway made of one push. Rejections are values and final; only {@link Retry} may be tried
 * again (pushy's contract: a rejection is permanent, a failure to send is not).
 */
public sealed interface PushResult {

    /** The gateway accepted the push; {@code gatewayId} is its id for it (APNs {@code apns-id}, FCM message name). */
    record Accepted(String gatewayId) implements PushResult {
    }

    /** The gateway refused the push for good (a bad payload, a wrong topic, a bad credential); never retried. */
    record Rejected(String reason) implements PushResult {
    }

    /**
     * The token is dead (APNs {@code Unregistered}, {@code BadDeviceToken}, {@code ExpiredToken}; FCM
     * {@code UNREGISTERED}, {@code SENDER_ID_MISMATCH}): it must be cleared from its device unless it was
     * registered again after {@code invalidSince} ({@code null} when the gateway gave no time).
     */
    record TokenInvalid(String reason, Instant invalidSince) implements PushResult {
    }

    /**
     * The push did not get through for a passing reason (connection loss, 429, 5xx, an open circuit):
     * try again, not before {@code retryAfter} when the gateway named one ({@code null} otherwise).
     */
    record Retry(String reason, Duration retryAfter) implements PushResult {
    }
}
