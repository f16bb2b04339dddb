package dev.herald.delivery;

import java.util.Objects;
import java.util.UUID;

/**
 * One push to one device token. The delivery id is sent as APNs' {@code apns-id}, so a push replayed
 * after a crash is recognisable as the same one.
 */
public record Push(UUID deliveryId, String token, PushContent content) {

    public Push {
        Objects.requireNonNull(deliveryId, "deliveryId");
        Objects.requireNonNull(token, "token");
        Objects.requireNonNull(content, "content");
    }
}
