package dev.herald.notifications;

import dev.herald.api.ApiException;
import dev.herald.api.DirectRequests;
import dev.herald.auth.ApiKeyTokenValidator;
import dev.herald.auth.Caller;
import dev.herald.auth.Scope;
import dev.herald.limits.RateLimitFilter;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.MeterRegistry;
import io.micronaut.context.annotation.Requires;
import io.micronaut.core.annotation.Nullable;
import io.netty.handler.codec.http.HttpRequest;
import jakarta.inject.Singleton;

import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.Executor;

/**
 * {@code POST /v1/notifications} served straight from Netty ({@link DirectRequests}) outside Micronaut's
 * request pipeline: the same checks, in the same order (credential, scope, rate limit, body), and the same
 * {@link NotificationIntake} as {@link NotificationController}, for the common case only. What that case
 * does not cover (an app key this node has not looked up in the last half second, another kind of
 * credential, a key without the {@code send} scope, a key over its rate limit) is left to Micronaut and
 * the controller, which answer it as usual; once the rate limit took its token, every refusal (a body the
 * contract refuses, an idempotency key used with another body, a full queue, PostgreSQL away) is answered
 * here with the problem the controller gives. {@code herald.notifications.direct=false} leaves every
 * notification to Micronaut.
 */
@Singleton
@Requires(property = "herald.notifications.direct", notEquals = "false")
class DirectNotifications implements DirectRequests.Endpoint {

    private static final String PATH = "/v1/notifications";
    /** Bodies up to this size are served here (a few hundred recipients); larger ones go to Micronaut. */
    static final int MAX_BODY = 64 * 1024;
    private static final String IDEMPOTENCY_KEY = "Idempotency-Key";

    private final ApiKeyTokenValidator keys;
    private final Optional<RateLimitFilter> limits;
    private final NotificationIntake intake;
    private final Counter direct;

    DirectNotifications(ApiKeyTokenValidator keys, Optional<RateLimitFilter> limits, NotificationIntake intake,
                        MeterRegistry meters) {
        this.keys = keys;
        this.limits = limits;
        this.intake = intake;
        this.direct = Counter.builder("herald.notifications.direct")
                .description("Notifications answered straight from Netty rather than through Micronaut's pipeline")
                .register(meters);
    }

    /** What the request's head says: its idempotency key, if any. */
    private record Asked(@Nullable String idempotencyKey) {
    }

    @Override
    public @Nullable Object ask(HttpRequest request, String uri) {
        if (!uri.equals(PATH)) {
            return null;
        }
        // more than one key is for Micronaut's binding to make sense of
        return request.headers().getAll(IDEMPOTENCY_KEY).size() > 1 ? null
                : new Asked(request.headers().get(IDEMPOTENCY_KEY));
    }

    @Override
    public int maxBody() {
        return MAX_BODY;
    }

    /** {@code {"id":"ntf_…","status":"scheduled","recipients":…}}: under 100 bytes whatever the body. */
    @Override
    public int answerSize(long length) {
        return 100;
    }

    @Override
    public String method() {
        return "POST";
    }

    @Override
    public String route() {
        return PATH;
    }

    @Override
    public @Nullable CompletionStage<DirectRequests.Answer> serve(Object asked, String token, byte[] body, Executor loop) {
        Caller.AppKey key = keys.remembered(token);
        if (key == null || !key.scopes().contains(Scope.SEND)) {
            return null;
        }
        RateLimitFilter limit = limits.orElse(null);
        CompletableFuture<Boolean> admitted = limit == null ? CompletableFuture.completedFuture(true)
                : limit.admitsKey(key).toCompletableFuture();
        java.util.function.Function<Boolean, CompletionStage<DirectRequests.Answer>> then = yes -> yes
                ? accept(key, (Asked) asked, body, loop)
                : CompletableFuture.completedFuture(null); // over the limit: Micronaut's filter answers 429
        // a token leased by this node answers at once; one that asked Redis goes back to the event loop for the body
        return admitted.isDone() ? admitted.thenCompose(then) : admitted.thenComposeAsync(then, loop);
    }

    /** As the controller, once the rate limit let the request in: refusals fail the stage with their problem. */
    private CompletionStage<DirectRequests.Answer> accept(Caller.AppKey key, Asked asked, byte[] body, Executor loop) {
        NotificationService.Incoming incoming;
        try {
            incoming = intake.check(key, body, asked.idempotencyKey(), IDEMPOTENCY_KEY);
        } catch (ApiException refused) {
            return CompletableFuture.failedFuture(refused);
        }
        return intake.store(incoming, loop).thenApply(a -> new DirectRequests.Answer(202,
                new NotificationViews.AcceptedView(a.id(), a.status(), a.recipients()), direct::increment));
    }
}
