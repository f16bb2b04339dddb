package dev.herald.notifications;

import java.time.Instant;

/**
 * A notification as stored. {@code status} is {@code scheduled}, {@code routing} or {@code cancelled};
 * a routing notification is {@code done} to callers once it is {@code routed} and no delivery is queued.
 */
public record StoredNotification(String id, String appId, boolean test, NotificationRequest request, String status,
                                 int recipients, boolean routed, Instant sendAt, Instant expiresAt, Instant createdAt) {

    /** What the 202 said: {@code scheduled} for a notification held until later, else {@code accepted}. */
    public String acceptedAs() {
        return sendAt.isAfter(createdAt) ? "scheduled" : "accepted";
    }
}
