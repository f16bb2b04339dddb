package dev.herald.auth;

import com.github.benmanes.caffeine.cache.Cache;
import com.github.benmanes.caffeine.cache.Caffeine;
import io.micronaut.core.annotation.Nullable;
import io.micronaut.core.async.publisher.Publishers;
import io.micronaut.core.order.Ordered;
import io.micronaut.http.HttpRequest;
import io.micronaut.security.authentication.Authentication;
import com.nimbusds.jwt.JWT;
import io.micronaut.security.token.jwt.validator.ReactiveJsonWebTokenValidator;
import io.micronaut.security.token.validator.TokenValidator;
import jakarta.inject.Singleton;
import org.reactivestreams.Publisher;
import reactor.core.publisher.Mono;

import java.time.Clock;
import java.time.Duration;
import java.util.Date;

/**
 * Remembers user JWTs that micronaut-security-jwt verified, until they expire (and for at most
 * {@link #REMEMBER}), so that a client calling repeatedly with the same token pays for the parse, the
 * signature and the claims checks once. A token is only ever answered from here while it would still
 * pass verification: signatures do not change and the expiry is checked on every hit. Tokens that fail
 * are not remembered.
 */
@Singleton
public final class VerifiedTokenCache implements TokenValidator<HttpRequest<?>> {

    static final Duration REMEMBER = Duration.ofMinutes(5);

    private final ReactiveJsonWebTokenValidator<JWT, HttpRequest<?>> verifier;
    private final Clock clock;
    private final Cache<String, Verified> verified = Caffeine.newBuilder()
            .expireAfterWrite(REMEMBER).maximumSize(100_000).build();

    VerifiedTokenCache(ReactiveJsonWebTokenValidator<JWT, HttpRequest<?>> verifier, Clock clock) {
        this.verifier = verifier;
        this.clock = clock;
    }

    private record Verified(Authentication authentication, long expiresAtMillis) {
    }

    /**
     * The caller of {@code token} when it was verified before and has not expired since, without
     * verifying anything now; null otherwise (then only {@link #validateToken} can tell).
     */
    public @Nullable Authentication remembered(String token) {
        Verified known = verified.getIfPresent(token);
        return known != null && clock.millis() < known.expiresAtMillis() ? known.authentication() : null;
    }

    @Override
    public Publisher<Authentication> validateToken(String token, HttpRequest<?> request) {
        if (token.chars().filter(c -> c == '.').count() != 2) {
            return Publishers.empty();
        }
        Verified known = verified.getIfPresent(token);
        if (known != null) {
            if (clock.millis() < known.expiresAtMillis()) {
                return Publishers.just(known.authentication());
            }
            verified.invalidate(token);
        }
        return Mono.from(verifier.validateToken(token, request)).doOnNext(authentication -> {
            long expires = expiry(authentication.getAttributes().get("exp"));
            if (expires > clock.millis()) {
                verified.put(token, new Verified(authentication, expires));
            }
        });
    }

    /** The {@code exp} claim as micronaut-security-jwt hands it over, in epoch milliseconds (0: unknown, not remembered). */
    private static long expiry(Object exp) {
        if (exp instanceof Date date) {
            return date.getTime();
        }
        if (exp instanceof Number seconds) {
            return seconds.longValue() * 1000;
        }
        return 0;
    }

    @Override
    public int getOrder() {
        return Ordered.HIGHEST_PRECEDENCE;
    }
}
