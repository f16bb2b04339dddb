package dev.herald.notifications;

import dev.herald.api.Page;
import dev.herald.delivery.DeliveryView;
import io.micronaut.serde.annotation.Serdeable;

import java.time.Instant;
import java.util.Map;

/** What the notifications endpoints answer. */
final class NotificationViews {

    private NotificationViews() {
    }

    /** {@code 202} to {@code POST /v1/notifications}. */
    @Serdeable
    record AcceptedView(String id, String status, int recipients) {
    }

    /** {@code GET /v1/notifications/{id}}. */
    @Serdeable
    record StatusView(String id, String status, int recipients, Instant createdAt, Instant sendAt, Instant expiresAt,
                      Map<String, Long> counts, Page<DeliveryView> deliveries) {
    }
}
