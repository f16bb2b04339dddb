package dev.herald.apps;

import com.eatthepath.pushy.apns.auth.ApnsSigningKey;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.google.auth.oauth2.ServiceAccountCredentials;
import dev.herald.api.ApiException;
import dev.herald.api.JsonBodies;
import dev.herald.api.Problem;
import dev.herald.webhooks.WebhookTargets;
import io.micronaut.context.annotation.Value;
import jakarta.inject.Singleton;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.security.InvalidKeyException;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.List;

/**
 * What the app schema cannot check: that the APNs key parses as a PKCS#8 EC key (pushy's own
 * loader), that the service account loads as Google credentials (google-auth's own loader), and that
 * a webhook does not point into the private network unless the operator allows it.
 */
@Singleton
class AppSettingsValidator {

    private final ObjectMapper mapper;
    private final boolean allowPrivateWebhooks;

    AppSettingsValidator(JsonBodies bodies, @Value("${herald.webhook-allow-private:false}") boolean allowPrivateWebhooks) {
        this.mapper = bodies.mapper();
        this.allowPrivateWebhooks = allowPrivateWebhooks;
    }

    void validate(JsonNode app) {
        List<Problem.FieldError> errors = new ArrayList<>();
        JsonNode apns = app.path("apns");
        if (apns.isObject()) {
            try {
                ApnsSigningKey.loadFromInputStream(
                        new ByteArrayInputStream(apns.path("privateKey").asText().getBytes(StandardCharsets.UTF_8)),
                        apns.path("teamId").asText(), apns.path("keyId").asText());
            } catch (IOException | NoSuchAlgorithmException | InvalidKeyException | RuntimeException e) {
                errors.add(new Problem.FieldError("apns.privateKey",
                        "is not an APNs signing key: give the .p8 file's PEM text (a PKCS#8 EC P-256 private key)"));
            }
        }
        JsonNode account = app.path("fcm").path("serviceAccount");
        if (account.isObject()) {
            try {
                ServiceAccountCredentials.fromStream(new ByteArrayInputStream(mapper.writeValueAsBytes(account)));
            } catch (IOException | RuntimeException e) {
                errors.add(new Problem.FieldError("fcm.serviceAccount.private_key",
                        "is not a usable service account: download its JSON key from the Firebase console"));
            }
        }
        JsonNode webhook = app.path("webhook");
        if (webhook.isObject() && !allowPrivateWebhooks) {
            checkPublic(webhook.path("url").asText(), errors);
        }
        if (!errors.isEmpty()) {
            throw ApiException.invalid(errors);
        }
    }

    private static void checkPublic(String url, List<Problem.FieldError> errors) {
        WebhookTargets.refusal(url).ifPresent(reason -> {
            switch (reason) {
                case "not_absolute" -> errors.add(new Problem.FieldError("webhook.url",
                        "must be an absolute http or https URL with a host"));
                case "private_address" -> errors.add(new Problem.FieldError("webhook.url",
                        "resolves to a private address; set HERALD_WEBHOOK_ALLOW_PRIVATE=true to allow it"));
                default -> {
                    // not resolvable from here (yet): accepted; every delivery checks the addresses again
                }
            }
        });
    }
}
