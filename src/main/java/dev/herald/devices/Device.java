package dev.herald.devices;

import io.micronaut.core.annotation.Nullable;
import io.micronaut.serde.annotation.Serdeable;

import java.time.Instant;
import java.util.List;

/**
 * A device as the API answers it ({@code device-schema/json/device.schema.json}): tokens are never
 * echoed, only the last characters of the push token so a developer can tell which one is held.
 */
@Serdeable
public record Device(String userId, String installationId, String app, String platform,
                     @Nullable String pushTokenSuffix, boolean voip, @Nullable String locale,
                     @Nullable String timezone, @Nullable String appVersion, List<String> tags,
                     Instant createdAt, Instant updatedAt, Instant lastSeenAt) {

    static final int SUFFIX_LENGTH = 6;

    static String suffix(String token) {
        return token == null ? null : token.substring(Math.max(0, token.length() - SUFFIX_LENGTH));
    }
}
