package dev.herald.delivery;

import com.fasterxml.jackson.databind.JsonNode;
import com.github.benmanes.caffeine.cache.Cache;
import com.github.benmanes.caffeine.cache.Caffeine;
import dev.herald.apps.AppStore;
import dev.herald.devices.Platform;
import jakarta.inject.Singleton;

import java.time.Duration;
import java.util.Optional;

/**
 * Each app's gateway credentials, read from its stored document and kept for a few seconds, so a
 * changed credential reaches the senders (which then replace their client) within {@link #FRESHNESS}.
 * Blocking on a miss: call from worker threads only.
 */
@Singleton
public class AppGateways {

    static final Duration FRESHNESS = Duration.ofSeconds(5);

    private final AppStore apps;
    private final Cache<String, Optional<AppStore.StoredApp>> cache = Caffeine.newBuilder()
            .expireAfterWrite(FRESHNESS).maximumSize(10_000).build();

    AppGateways(AppStore apps) {
        this.apps = apps;
    }

    /** The app as stored, from the same few-seconds cache. */
    public Optional<AppStore.StoredApp> app(String appId) {
        return cache.get(appId, apps::find);
    }

    /** The app's email sender address ({@code email.from}), if it has one. */
    public Optional<String> emailFrom(String appId) {
        return cache.get(appId, apps::find).map(a -> a.document().path("email").path("from").asText(null));
    }

    /** Whether the app keeps its devices' badges in step with the inbox ({@code syncBadges}). */
    public boolean syncBadges(String appId) {
        return cache.get(appId, apps::find).map(a -> a.document().path("syncBadges").asBoolean(false)).orElse(false);
    }

    /** Whether the app has a webhook to tell of events. */
    public boolean hasWebhook(String appId) {
        return cache.get(appId, apps::find).map(a -> a.document().hasNonNull("webhook")).orElse(false);
    }

    /** The app's credentials for the platform's gateway, or empty when the app has none configured. */
    public Optional<GatewayCredentials> credentials(String appId, Platform platform) {
        return credentials(appId, cache.get(appId, apps::find), platform);
    }

    /**
     * What {@link #credentials} would answer, without blocking: empty when the app is not in the cache
     * just now. For event loops.
     */
    public Optional<Optional<GatewayCredentials>> credentialsIfCached(String appId, Platform platform) {
        Optional<AppStore.StoredApp> app = cache.getIfPresent(appId);
        return app == null ? Optional.empty() : Optional.of(credentials(appId, app, platform));
    }

    private static Optional<GatewayCredentials> credentials(String appId, Optional<AppStore.StoredApp> app, Platform platform) {
        return app.flatMap(a -> {
            JsonNode block = a.document().get(platform == Platform.IOS ? "apns" : "fcm");
            return block == null || block.isNull() ? Optional.empty()
                    : Optional.of(new GatewayCredentials(appId, a.updatedAt(), block));
        });
    }
}
