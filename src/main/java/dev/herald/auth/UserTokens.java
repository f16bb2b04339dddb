package dev.herald.auth;

import com.nimbusds.jose.JOSEException;
import com.nimbusds.jwt.JWTClaimsSet;
import io.micronaut.context.annotation.Value;
import jakarta.inject.Singleton;

import java.time.Clock;
import java.time.Instant;
import java.util.Date;
import java.util.UUID;

/**
 * Mints the user tokens of {@code POST /v1/users/{userId}/tokens}: HS256 JWTs whose {@code sub} is
 * the user id and whose {@code aud} is the deployment's audience. They are verified by
 * micronaut-security-jwt through the signature bean {@link UserTokenSignature}, beside any
 * signature or JWKS the deployment configures for its own identity provider.
 */
@Singleton
public class UserTokens {

    static final String ISSUER = "herald";

    private final UserTokenSignature signature;
    private final String audience;
    private final Clock clock;

    UserTokens(UserTokenSignature signature, @Value("${herald.jwt-audience:herald}") String audience,
               Clock clock) {
        this.signature = signature;
        this.audience = audience;
        this.clock = clock;
    }

    public record Minted(String token, Instant expiresAt) {
    }

    public Minted mint(String userId, long ttlSeconds) {
        Instant now = clock.instant();
        Instant expiresAt = now.plusSeconds(ttlSeconds);
        JWTClaimsSet claims = new JWTClaimsSet.Builder()
                .issuer(ISSUER)
                .subject(userId)
                .audience(audience)
                .issueTime(Date.from(now))
                .notBeforeTime(Date.from(now))
                .expirationTime(Date.from(expiresAt))
                .jwtID(UUID.randomUUID().toString())
                .build();
        try {
            return new Minted(signature.sign(claims).serialize(), expiresAt);
        } catch (JOSEException e) {
            throw new IllegalStateException("Signing a user token failed", e);
        }
    }
}
