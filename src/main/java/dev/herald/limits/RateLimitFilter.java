package dev.herald.limits;

import dev.herald.api.ApiException;
import dev.herald.api.ProblemType;
import dev.herald.auth.Caller;
import io.micronaut.context.annotation.Requires;
import io.micronaut.context.annotation.Value;
import io.micronaut.http.HttpRequest;
import io.micronaut.core.order.Ordered;
import io.micronaut.http.annotation.Filter;
import io.micronaut.http.annotation.RequestFilter;
import io.micronaut.http.annotation.ServerFilter;
import io.micronaut.http.filter.ServerFilterPhase;
import io.micronaut.security.authentication.Authentication;

import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;

/**
 * Per-credential rate limits, shared by every node through Redis: each app key
 * ({@code herald.limits.key-per-second}, burst {@code herald.limits.key-burst}, or its app's own
 * {@code limits.keyPerSecond} / {@code limits.keyBurst}) and each user
 * ({@code herald.limits.user-per-second}, burst {@code herald.limits.user-burst}, across their tokens and
 * apps) has a token bucket; a request over it gets 429 with {@code Retry-After} (whole seconds, at least 1).
 * The admin key and requests without a credential (refused anyway, or open endpoints) are not limited.
 * Runs after authentication, on the event loop, without blocking (the bucket is one Redis script call,
 * and most requests spend a token this node already leased, answered at once without any reactive chain).
 */
@ServerFilter(Filter.MATCH_ALL_PATTERN)
@Requires(property = "herald.limits.enabled", notEquals = "false")
public class RateLimitFilter implements Ordered {

    private final RateLimiter limiter;
    private final double keyPerSecond;
    private final int keyBurst;
    private final double userPerSecond;
    private final int userBurst;

    RateLimitFilter(RateLimiter limiter,
                    @Value("${herald.limits.key-per-second:1000}") double keyPerSecond,
                    @Value("${herald.limits.key-burst:2000}") int keyBurst,
                    @Value("${herald.limits.user-per-second:20}") double userPerSecond,
                    @Value("${herald.limits.user-burst:100}") int userBurst) {
        this.limiter = limiter;
        this.keyPerSecond = keyPerSecond;
        this.keyBurst = keyBurst;
        this.userPerSecond = userPerSecond;
        this.userBurst = userBurst;
    }

    /**
     * Takes one request from the user's bucket, for requests served outside Micronaut's filters (live
     * streams written straight to their connection): false when the user is over their limit.
     */
    public CompletionStage<Boolean> admitsUser(String userId) {
        return limiter.take("user:" + userId, userPerSecond, userBurst).thenApply(RateLimiter.Decision::taken);
    }

    /**
     * Takes one request from the app key's bucket, for requests served outside Micronaut's filters
     * (notifications served straight from Netty): false when the key is over its limit.
     */
    public CompletionStage<Boolean> admitsKey(Caller.AppKey key) {
        return limiter.take("key:" + key.keyId(), keyPerSecond(key), keyBurst(key)).thenApply(RateLimiter.Decision::taken);
    }

    private double keyPerSecond(Caller.AppKey key) {
        return key.perSecond() != null ? key.perSecond() : keyPerSecond;
    }

    private int keyBurst(Caller.AppKey key) {
        return key.burst() != null ? key.burst() : keyBurst;
    }

    @Override
    public int getOrder() {
        return ServerFilterPhase.SECURITY.after();
    }

    /** The request itself to let it through; fails with a 429 problem when over the limit. */
    @RequestFilter
    public CompletionStage<HttpRequest<?>> limit(HttpRequest<?> request) {
        Authentication authentication = request.getUserPrincipal(Authentication.class).orElse(null);
        if (authentication == null) {
            return CompletableFuture.completedFuture(request);
        }
        Caller caller;
        try {
            caller = Caller.of(authentication);
        } catch (ApiException invalid) {
            return CompletableFuture.completedFuture(request); // refused further on, with the reason
        }
        String bucket;
        double perSecond;
        int burst;
        if (caller instanceof Caller.AppKey key) {
            bucket = "key:" + key.keyId();
            perSecond = keyPerSecond(key);
            burst = keyBurst(key);
        } else if (caller instanceof Caller.User user) {
            bucket = "user:" + user.userId();
            perSecond = userPerSecond;
            burst = userBurst;
        } else {
            return CompletableFuture.completedFuture(request);
        }
        return limiter.take(bucket, perSecond, burst).thenApply(decision -> {
            if (decision.taken()) {
                return request;
            }
            long seconds = Math.max(1, (decision.retryAfter().toMillis() + 999) / 1000);
            throw new ApiException(ProblemType.RATE_LIMITED, "Over this credential's limit of "
                    + perSecond + " requests a second; try again in "
                    + seconds + " s", List.of(), Map.of("Retry-After", Long.toString(seconds)));
        });
    }
}
