package dev.herald.delivery;

import java.time.Instant;
import java.util.Map;
import java.util.Objects;

/**
 * What one push says, gateway-neutral and in one locale. Built once per notification and locale and
 * shared by every device that gets it; each gateway turns it into its own payload.
 *
 * @param title       the alert title; {@code null} for a background or VoIP push
 * @param body        the alert body, may be {@code null}
 * @param data        custom string keys delivered to the app (APNs: top-level keys beside {@code aps};
 *                    FCM: {@code data})
 * @param link        a deep link, delivered as the custom key {@code link}; may be {@code null}
 * @param badge       the iOS badge number; {@code null} leaves the badge alone
 * @param sound       the sound name; {@code null} for none
 * @param collapseKey APNs {@code apns-collapse-id} / FCM {@code android.collapseKey}; may be {@code null}
 * @param expiresAt   when the gateways should give up (APNs {@code apns-expiration}, FCM {@code android.ttl})
 */
public record PushContent(PushKind kind, String title, String body, Map<String, String> data, String link,
                          Integer badge, String sound, String collapseKey, Priority priority, Instant expiresAt) {

    public PushContent {
        Objects.requireNonNull(kind, "kind");
        Objects.requireNonNull(priority, "priority");
        Objects.requireNonNull(expiresAt, "expiresAt");
        data = data == null ? Map.of() : Map.copyOf(data);
        if (kind == PushKind.ALERT && title == null) {
            throw new IllegalArgumentException("an alert push needs a title; a push without one is BACKGROUND");
        }
    }

    /** Whether the push rings a call: it goes ahead of waiting notifications (see {@link GatewayGuard}). */
    public boolean urgent() {
        return kind == PushKind.VOIP;
    }
}
