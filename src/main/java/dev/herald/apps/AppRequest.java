package dev.herald.apps;

import com.fasterxml.jackson.databind.JsonNode;
import io.micronaut.core.annotation.Nullable;
import io.micronaut.serde.annotation.Serdeable;
import io.swagger.v3.oas.annotations.media.Schema;

/**
 * The body of {@code POST /v1/apps} as the OpenAPI document shows it. The request itself is checked
 * against {@code device-schema/json/app.schema.json}, which is authoritative; secrets in it are
 * write-only and never answered.
 */
@Serdeable
@Schema(description = "An app; secret fields (privateKey, serviceAccount, webhook.secret) are write-only")
record AppRequest(@Schema(pattern = "^[a-z0-9][a-z0-9-]{1,39}$") String id, String name, @Nullable Apns apns,
                  @Nullable Fcm fcm, @Nullable Email email, @Nullable Webhook webhook, @Nullable Boolean syncBadges) {

    @Serdeable
    record Apns(String teamId, String keyId, @Schema(description = "The .p8 file's PEM text") String privateKey,
                String bundleId, @Schema(allowableValues = {"sandbox", "production"}) String environment) {
    }

    @Serdeable
    record Fcm(@Schema(description = "The Google service-account JSON, with private_key") JsonNode serviceAccount) {
    }

    @Serdeable
    record Email(String from) {
    }

    @Serdeable
    record Webhook(@Schema(description = "https URL; private addresses are refused unless allowed") String url,
                   String secret) {
    }
}
