package dev.herald.devices;

import dev.herald.api.ApiException;
import dev.herald.api.JsonBodies;
import dev.herald.auth.Caller;
import dev.herald.auth.VerifiedTokenCache;
import dev.herald.limits.RateLimitFilter;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import io.micronaut.context.BeanProvider;
import io.micronaut.core.annotation.Nullable;
import io.micronaut.json.JsonMapper;
import io.micronaut.security.authentication.Authentication;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufOutputStream;
import jakarta.inject.Singleton;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.Executor;
import java.util.concurrent.TimeUnit;

/**
 * {@code PUT /v1/devices/{installationId}} as {@link RegistrationChannels} serves it outside Micronaut's
 * request pipeline: the same checks, in the same order, and the same writer as {@link DeviceController},
 * for the common case only. Whatever that case does not cover (a token not verified before, another kind
 * of credential, a body or id the contract refuses, a user over their rate limit) is left to Micronaut
 * and the controller, which answer it as usual, problem and all.
 */
@Singleton
class DirectRegistrations {

    /** The route's tags in Micronaut's {@code http.server.requests}, so both paths count as one. */
    private static final String ROUTE = "/v1/devices/{installationId}";

    private final VerifiedTokenCache tokens;
    private final BeanProvider<RateLimitFilter> limits;
    private final JsonBodies bodies;
    private final RegistrationWriter writer;
    private final JsonMapper json;
    private final Timer created;
    private final Timer updated;
    private final Counter direct;

    DirectRegistrations(VerifiedTokenCache tokens, BeanProvider<RateLimitFilter> limits,
                        JsonBodies bodies, RegistrationWriter writer, JsonMapper json,
                        MeterRegistry meters) {
        this.tokens = tokens;
        this.limits = limits;
        this.bodies = bodies;
        this.writer = writer;
        this.json = json;
        this.created = requests(meters, "201");
        this.updated = requests(meters, "200");
        this.direct = Counter.builder("herald.devices.registration.direct")
                .description("Registrations answered straight from Netty rather than through Micronaut's pipeline")
                .register(meters);
    }

    private static Timer requests(MeterRegistry meters, String status) {
        return Timer.builder("http.server.requests")
                .tags("exception", "none", "method", "PUT", "status", status, "uri", ROUTE)
                .register(meters);
    }

    /**
     * Stores the registration of {@code installationId} by the bearer of {@code token}, answering on
     * {@code loop}; null, or a stage completing with null, when Micronaut is to answer the request.
     */
    @Nullable CompletionStage<DeviceStore.Registered> register(String token, String installationId, byte[] body,
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
        RateLimitFilter limit = limits.find(null).orElse(null);
        if (limit == null) {
            return writer.submit(user.userId(), installationId, registration, loop);
        }
        return limit.admitsUser(user.userId()).thenCompose(admitted -> admitted
                ? writer.submit(user.userId(), installationId, registration, loop)
                : CompletableFuture.completedFuture(null));
    }

    /** Writes an answer's body (a device, a problem), exactly as Micronaut would, into {@code out}. */
    void writeJson(Object value, ByteBuf out) {
        try (ByteBufOutputStream stream = new ByteBufOutputStream(out)) {
            json.writeValue(stream, value);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    void served(DeviceStore.Registered registered, long startedNanos) {
        (registered.created() ? created : updated).record(System.nanoTime() - startedNanos, TimeUnit.NANOSECONDS);
        direct.increment();
    }
}
