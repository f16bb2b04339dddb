package dev.herald.auth;

import com.github.benmanes.caffeine.cache.Cache;
import com.github.benmanes.caffeine.cache.Caffeine;
import io.micronaut.core.annotation.Nullable;
import io.micronaut.core.async.publisher.Publishers;
import io.micronaut.http.HttpRequest;
import io.micronaut.scheduling.TaskExecutors;
import io.micronaut.security.authentication.Authentication;
import io.micronaut.security.token.validator.TokenValidator;
import jakarta.inject.Named;
import jakarta.inject.Singleton;
import org.reactivestreams.Publisher;

import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;

/**
 * Accepts the admin key and app keys as bearer credentials (user JWTs are left to
 * micronaut-security-jwt). App keys are looked up by hash on the blocking executor, never on the
 * event loop, and remembered for at most {@link #REMEMBER}, so a key revoked on any node is refused by
 * every node within that time (the revoking node forgets it at once).
 */
@Singleton
public final class ApiKeyTokenValidator implements TokenValidator<HttpRequest<?>> {

    /** API.md: a revoked key is refused on every node within 1 s. */
    static final Duration REMEMBER = Duration.ofMillis(500);

    private final AdminKey adminKey;
    private final ApiKeyStore keys;
    private final ExecutorService blocking;
    private final Cache<String, Optional<Caller.AppKey>> remembered = Caffeine.newBuilder()
            .expireAfterWrite(REMEMBER)
            .maximumSize(10_000)
            .build();

    ApiKeyTokenValidator(AdminKey adminKey, ApiKeyStore keys, @Named(TaskExecutors.BLOCKING) ExecutorService blocking) {
        this.adminKey = adminKey;
        this.keys = keys;
        this.blocking = blocking;
        keys.onRevoke(remembered::invalidate);
    }

    /**
     * The app key {@code token} when this node looked it up in the last {@link #REMEMBER} and found it
     * active, without looking anything up now; null otherwise (then only {@link #validateToken} can tell).
     */
    public @Nullable Caller.AppKey remembered(String token) {
        if (!token.startsWith(ApiKeyStore.LIVE_PREFIX) && !token.startsWith(ApiKeyStore.TEST_PREFIX)) {
            return null;
        }
        Optional<Caller.AppKey> known = remembered.getIfPresent(Secrets.sha256(token));
        return known == null ? null : known.orElse(null);
    }

    @Override
    public Publisher<Authentication> validateToken(String token, HttpRequest<?> request) {
        if (token.startsWith(ApiKeyStore.LIVE_PREFIX) || token.startsWith(ApiKeyStore.TEST_PREFIX)) {
            String hash = Secrets.sha256(token);
            Optional<Caller.AppKey> known = remembered.getIfPresent(hash);
            if (known != null) {
                return known.map(ApiKeyTokenValidator::authentication).map(Publishers::just).orElseGet(Publishers::empty);
            }
            CompletableFuture<Authentication> lookup = CompletableFuture.supplyAsync(() -> {
                Optional<Caller.AppKey> found = keys.findActive(hash);
                remembered.put(hash, found);
                return found.map(ApiKeyTokenValidator::authentication).orElse(null);
            }, blocking);
            return Publishers.fromCompletableFuture(lookup);
        }
        if (token.chars().filter(c -> c == '.').count() == 2) {
            return Publishers.empty(); // a JWT: micronaut-security-jwt's validator decides
        }
        if (adminKey.matches(token)) {
            return Publishers.just(Authentication.build("admin", List.of("admin"),
                    Map.of(Caller.ATTRIBUTE, new Caller.Admin())));
        }
        return Publishers.empty();
    }

    private static Authentication authentication(Caller.AppKey key) {
        return Authentication.build("app:" + key.appId(), List.of("app"), Map.of(Caller.ATTRIBUTE, key));
    }
}
