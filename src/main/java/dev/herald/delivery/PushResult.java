package dev.herald.delivery;

import java.time.Duration;
import java.time.Instant;

/**
 * What a gateway made of one push. Rejections are values and final; only {@link Retry} may be tried
 * again (pushy's contract: a rejection is permanent, a failure to send is not).
 */
public sealed interface PushResult {

    /** What happened, as a metrics tag: {@code accepted}, {@code rejected}, {@code token_invalid} or {@code retry}. */
    default String outcomeTag() {
        if (this instanceof Accepted) {
            return "accepted";
        }
        if (this instanceof Rejected) {
            return "rejected";
        }
        return this instanceof TokenInvalid ? "token_invalid" : "retry";
    }

    /** The gateway's (or Herald's) reason, {@code none} for an accepted push. */
    default String reasonTag() {
        if (this instanceof Rejected rejected) {
            return rejected.reason();
        }
        if (this instanceof TokenInvalid invalid) {
            return invalid.reason();
        }
        return this instanceof Retry retry ? retry.reason() : "none";
    }

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
