package dev.herald.live;

import io.micronaut.core.annotation.Nullable;
import io.micronaut.serde.annotation.Serdeable;

import java.time.Instant;

/** {@code GET /v1/users/{userId}/presence}: {@code connections} counts open streams on every node. */
@Serdeable
public record PresenceView(boolean present, long connections, @Nullable Instant lastSeenAt) {
}
