package dev.herald.apps;

import com.fasterxml.jackson.databind.JsonNode;
import io.micronaut.core.annotation.Nullable;
import io.micronaut.serde.annotation.Serdeable;

import java.time.Instant;

/** An app as answered: every settings block without its secret fields and with {@code configured: true}. */
@Serdeable
public record AppView(String id, String name, @Nullable Apns apns, @Nullable Fcm fcm, @Nullable Email email,
                      @Nullable Webhook webhook, @Nullable Limits limits, boolean syncBadges, Instant createdAt,
                      Instant updatedAt) {

    @Serdeable
    public record Apns(String teamId, String keyId, String bundleId, String environment, boolean configured) {
    }

    @Serdeable
    public record Fcm(String projectId, String clientEmail, boolean configured) {
    }

    @Serdeable
    public record Email(String from, boolean configured) {
    }

    @Serdeable
    public record Webhook(String url, boolean configured) {
    }

    /** The app's own rate limits for its keys and cap on pushes per device; null fields: the deployment's. */
    @Serdeable
    public record Limits(@Nullable Double keyPerSecond, @Nullable Integer keyBurst, @Nullable Integer devicePushesPerMinute) {
    }

    static AppView of(AppStore.StoredApp app) {
        JsonNode d = app.document();
        JsonNode apns = d.path("apns");
        JsonNode fcm = d.path("fcm").path("serviceAccount");
        JsonNode email = d.path("email");
        JsonNode webhook = d.path("webhook");
        JsonNode limits = d.path("limits");
        return new AppView(app.id(), d.path("name").asText(),
                apns.isObject() ? new Apns(apns.path("teamId").asText(), apns.path("keyId").asText(),
                        apns.path("bundleId").asText(), apns.path("environment").asText(), true) : null,
                fcm.isObject() ? new Fcm(fcm.path("project_id").asText(), fcm.path("client_email").asText(), true) : null,
                email.isObject() ? new Email(email.path("from").asText(), true) : null,
                webhook.isObject() ? new Webhook(webhook.path("url").asText(), true) : null,
                limits.isObject() ? new Limits(limits.hasNonNull("keyPerSecond") ? limits.get("keyPerSecond").asDouble() : null,
                        limits.hasNonNull("keyBurst") ? limits.get("keyBurst").asInt() : null,
                        limits.hasNonNull("devicePushesPerMinute") ? limits.get("devicePushesPerMinute").asInt() : null) : null,
                d.path("syncBadges").asBoolean(false), app.createdAt(), app.updatedAt());
    }
}
