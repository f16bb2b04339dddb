package dev.herald.auth;

import dev.herald.settings.DeploymentSettings;
import io.micronaut.context.annotation.Context;
import io.micronaut.context.annotation.Value;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The operator's admin key. From {@code HERALD_ADMIN_KEY} when set; otherwise generated at the
 * deployment's first start, printed once to the log and kept only as a hash in PostgreSQL, so every
 * node agrees on it and no later start prints it again.
 */
@Context
public class AdminKey {

    private static final Logger LOG = LoggerFactory.getLogger(AdminKey.class);
    static final String SETTING = "admin_key_sha256";

    private final String hash;

    AdminKey(@Value("${herald.admin-key:}") String configured, DeploymentSettings settings) {
        if (configured != null && !configured.isBlank()) {
            this.hash = Secrets.sha256(configured.strip());
            LOG.info("Admin key: from HERALD_ADMIN_KEY (fingerprint {})", Secrets.fingerprint(configured.strip()));
            return;
        }
        String[] generated = new String[1];
        DeploymentSettings.Setting setting = settings.getOrCreate(SETTING, () -> {
            generated[0] = "hk_admin_" + Secrets.random(40);
            return Secrets.sha256(generated[0]);
        });
        this.hash = setting.value();
        if (setting.created()) {
            // printed exactly once, at the deployment's first start; only its hash is kept
            LOG.warn("Admin key generated, shown this once; keep it safe: {}", generated[0]);
        } else {
            LOG.info("Admin key: the one generated at first start (kept hashed)");
        }
    }

    boolean matches(String presented) {
        return Secrets.constantTimeEquals(hash, Secrets.sha256(presented));
    }
}
