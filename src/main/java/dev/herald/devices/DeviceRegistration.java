package dev.herald.devices;

import io.micronaut.core.annotation.Nullable;
import io.micronaut.serde.annotation.Serdeable;

import java.util.List;

/**
 * The body of {@code PUT /v1/devices/{installationId}}, already checked against
 * {@code device-schema/json/device-registration.schema.json}.
 */
@Serdeable
public record DeviceRegistration(String app, Platform platform, String pushToken, @Nullable String voipToken,
                                 @Nullable String locale, @Nullable String timezone, @Nullable String appVersion,
                                 @Nullable List<String> tags) {

    public DeviceRegistration {
        tags = tags == null ? List.of() : tags.stream().distinct().sorted().toList();
    }
}
