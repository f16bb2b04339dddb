package dev.herald.delivery;

import com.fasterxml.jackson.databind.JsonNode;

import java.time.Instant;
import java.util.Objects;

/**
 * An app's credentials for one gateway, as the app stores them: the {@code apns} block
 * ({@code teamId, keyId, privateKey, bundleId, environment}) or the {@code fcm} block
 * ({@code serviceAccount}). {@code version} changes whenever the app is updated, so a sender knows to
 * replace its client. Never log {@code block}: it holds private keys.
 */
public record GatewayCredentials(String appId, Instant version, JsonNode block) {

    public GatewayCredentials {
        Objects.requireNonNull(appId, "appId");
        Objects.requireNonNull(version, "version");
        Objects.requireNonNull(block, "block");
    }

    @Override
    public String toString() {
        return "GatewayCredentials[appId=" + appId + ", version=" + version + "]";
    }
}
