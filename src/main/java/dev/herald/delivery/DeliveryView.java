package dev.herald.delivery;

import com.fasterxml.jackson.annotation.JsonInclude;
import io.micronaut.core.annotation.Nullable;
import io.micronaut.serde.annotation.Serdeable;

import java.time.Instant;

/** One delivery as {@code GET /v1/notifications/{id}} shows it. */
@Serdeable
@JsonInclude(JsonInclude.Include.NON_NULL)
public record DeliveryView(String userId, @Nullable String installationId, String channel, String status,
                           @Nullable String reason, int attempts, Instant updatedAt) {
}
