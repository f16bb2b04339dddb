package dev.herald.calls;

import com.fasterxml.jackson.annotation.JsonInclude;
import io.micronaut.core.annotation.Nullable;
import io.micronaut.serde.annotation.Serdeable;

import java.time.Instant;
import java.util.List;

/**
 * A call as {@code POST}, {@code DELETE} and {@code GET /v1/calls…} answer it ({@code call.schema.json}):
 * {@code routes} are the call.incoming routes, or for {@code DELETE} the call.ended ones.
 */
@Serdeable
@JsonInclude(JsonInclude.Include.NON_NULL)
record CallView(String callId, String status, String callee, CallerView caller, boolean video, int ringSeconds,
                Instant createdAt, Instant ringUntil, @Nullable Instant endedAt, @Nullable String missedNotificationId,
                List<RouteView> routes) {

    @Serdeable
    @JsonInclude(JsonInclude.Include.NON_NULL)
    record CallerView(String id, @Nullable String name) {
    }

    @Serdeable
    @JsonInclude(JsonInclude.Include.NON_NULL)
    record RouteView(@Nullable String installationId, String channel, String status, @Nullable String reason) {
    }

    static CallView of(CallService.Answer answer, boolean endRoutes) {
        CallStore.StoredCall c = answer.call();
        List<RouteView> routes = answer.routes().stream().map(r -> endRoutes
                ? new RouteView(r.installationId(), r.channel(), r.endStatus() == null ? "sending" : r.endStatus(), r.endReason())
                : new RouteView(r.installationId(), r.channel(), r.status(), r.reason())).toList();
        return new CallView(c.callId(), c.status(), c.callee(), new CallerView(c.callerId(), c.callerName()), c.video(),
                c.ringSeconds(), c.createdAt(), c.ringUntil(), c.endedAt(), c.missedNotificationId(), routes);
    }
}
