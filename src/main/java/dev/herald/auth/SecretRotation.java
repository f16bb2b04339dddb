package dev.herald.auth;

import dev.herald.apps.AppStore;
import io.micronaut.context.annotation.Context;
import io.micronaut.context.annotation.Requires;
import io.micronaut.context.event.StartupEvent;
import io.micronaut.runtime.event.annotation.EventListener;
import io.micronaut.scheduling.annotation.Async;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * At startup, seals again under the current master key every app secret sealed under a previous one
 * (or stored before sealing existed), so that after a rotation the old key can leave
 * {@code HERALD_MASTER_KEY_PREVIOUS} once every node has run. Idempotent, safe on several nodes at once.
 */
@Context
@Requires(property = "herald.secrets.rotate-at-startup", notEquals = "false")
class SecretRotation {

    private static final Logger LOG = LoggerFactory.getLogger(SecretRotation.class);

    private final AppStore apps;

    SecretRotation(AppStore apps) {
        this.apps = apps;
    }

    @EventListener
    @Async
    void onStartup(StartupEvent event) {
        try {
            int rewritten = apps.sealAgain();
            if (rewritten > 0) {
                LOG.info("Secrets at rest: sealed the secrets of {} apps again under the current master key", rewritten);
            }
        } catch (RuntimeException e) {
            LOG.warn("Secrets at rest: sealing again failed, tried at the next start: {}", e.toString());
        }
    }
}
