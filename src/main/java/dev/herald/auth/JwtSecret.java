package dev.herald.auth;

import dev.herald.settings.DeploymentSettings;
import io.micronaut.context.annotation.Context;
import io.micronaut.context.annotation.Value;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.nio.charset.StandardCharsets;
import java.util.Base64;

/**
 * The HMAC secret that signs the user tokens Herald mints: {@code HERALD_JWT_SECRET} when set
 * (at least 32 bytes, as HS256 requires), otherwise generated once per deployment and kept in
 * PostgreSQL so that every node verifies every other node's tokens.
 */
@Context
public class JwtSecret {

    private static final Logger LOG = LoggerFactory.getLogger(JwtSecret.class);
    private static final int MIN_BYTES = 32; // RFC 7518 §3.2: an HS256 key is at least 256 bits

    private static final String SETTING = "jwt_secret";

    private final byte[] secret;

    JwtSecret(@Value("${herald.jwt-secret:}") String configured, DeploymentSettings settings, SecretBox box) {
        if (configured != null && !configured.isBlank()) {
            byte[] bytes = configured.getBytes(StandardCharsets.UTF_8);
            if (bytes.length < MIN_BYTES) {
                throw new IllegalStateException("HERALD_JWT_SECRET must be at least " + MIN_BYTES
                        + " bytes long; generate one with: openssl rand -base64 48");
            }
            this.secret = bytes;
            LOG.info("User tokens: signed with HERALD_JWT_SECRET");
        } else {
            // sealed in PostgreSQL like every secret there; sealed again when the master key changed
            String stored = settings.getOrCreate(SETTING, () -> box.seal(
                    Base64.getUrlEncoder().withoutPadding().encodeToString(Secrets.randomBytes(48)), SETTING)).value();
            String plain = box.open(stored, SETTING);
            if (!box.isCurrent(stored)) {
                settings.replace(SETTING, box.seal(plain, SETTING));
            }
            this.secret = plain.getBytes(StandardCharsets.UTF_8);
            LOG.info("User tokens: signed with the deployment's generated secret");
        }
    }

    byte[] bytes() {
        return secret.clone();
    }
}
