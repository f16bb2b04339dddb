package dev.herald.devices;

import dev.herald.api.ApiException;
import dev.herald.api.DirectRequests;
import dev.herald.api.JsonBodies;
import dev.herald.auth.Caller;
import dev.herald.auth.VerifiedTokenCache;
import dev.herald.limits.RateLimitFilter;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.MeterRegistry;
import io.micronaut.core.annotation.Nullable;
import io.micronaut.context.annotation.Requires;
import io.micronaut.security.authentication.Authentication;
import io.netty.handler.codec.http.HttpRequest;
import jakarta.inject.Singleton;

import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.Executor;

/**
 * {@code PUT /v1/devices/{installationId}} served straight from Netty ({@link DirectRequests}) outside
 * Micronaut's request pipeline: the same checks, in the same order, and the same writer as
 * {@link DeviceController}, for the common case only. Whatever that case does not cover (a token not
 * verified before, another kind of credential, a body or id the contract refuses, a user over their rate
 * limit) is left to Micronaut and the controller, which answer it as usual, problem and all.
 * {@code herald.devices.direct=false} leaves every registration to Micronaut.
 */
@Singleton
@Requires(property = "herald.devices.direct", notEquals = "false")
class DirectRegistrations implements DirectRequests.Endpoint {

    private static final String PREFIX = "/v1/devices/";
    static final int MAX_BODY = 16 * 1024;


    private final VerifiedTokenCache tokens;
    private final Optional<RateLimitFilter> limits;
    private final JsonBodies bodies;
    private final RegistrationWriter writer;
    private final Counter direct;

    DirectRegistrations(VerifiedTokenCache tokens, Optional<RateLimitFilter> limits,
                        JsonBodies bodies, RegistrationWriter writer, MeterRegistry meters) {
        this.tokens = tokens;
        this.limits = limits;
        this.bodies = bodies;
        this.writer = writer;
        this.direct = Counter.builder("herald.devices.registration.direct")
                .description("Registrations answered straight from Netty rather than through Micronaut's pipeline")
                .register(meters);
    }

    @Override
    public @Nullable Object ask(HttpRequest request, String uri) {
        if (!uri.startsWith(PREFIX) || uri.indexOf('/', PREFIX.length()) >= 0) {
            return null;
        }
        String id = uri.substring(PREFIX.length());
        return id.equals(".") || id.equals("..") ? null : id;
    }

    @Override
    public int maxBody() {
        return MAX_BODY;
    }

    /**
     * Bodies up to 700 bytes are served here whatever the client accepts: their answers (the push token
     * dropped; ids, times and empty fields added) stay under Micronaut's 1 KiB compression threshold in
     * the usual case; larger ones from clients taking compression go to Micronaut.
     */
    @Override
    public int answerSize(long length) {
        return (int) length + 323;
    }

    @Override
    public String method() {
        return "PUT";
    }

    @Override
    public String route() {
        return "/v1/devices/{installationId}";
    }

    @Override
    public @Nullable CompletionStage<DirectRequests.Answer> serve(Object asked, String token, byte[] body, Executor loop) {
        CompletionStage<DeviceStore.Registered> stored = register(token, (String) asked, body, loop);
        return stored == null ? null : stored.thenApply(registered -> registered == null ? null
                : new DirectRequests.Answer(registered.created() ? 201 : 200, registered.device(), direct::increment));
    }

    /**
     * Stores the registration of {@code installationId} by the bearer of {@code token}, answering on
     * {@code loop}; null, or a stage completing with null, when Micronaut is to answer the request.
     */
    private @Nullable CompletionStage<DeviceStore.Registered> register(String token, String installationId, byte[] body,
                                                                       Executor loop) {
        Authentication authentication = tokens.remembered(token);
        if (authentication == null) {
            return null;
        }
        DeviceRegistration registration;
        Caller caller;
        try {
            caller = Caller.of(authentication);
            registration = DeviceController.registration(bodies, installationId, body);
        } catch (ApiException refused) {
            return null; // Micronaut answers with the problem
        }
        if (!(caller instanceof Caller.User user)) {
            return null;
        }
        RateLimitFilter limit = limits.orElse(null);
        if (limit == null) {
            return writer.submit(user.userId(), installationId, registration, loop);
        }
        return limit.admitsUser(user.userId()).thenCompose(admitted -> admitted
                ? writer.submit(user.userId(), installationId, registration, loop)
                : CompletableFuture.completedFuture(null));
    }
}
