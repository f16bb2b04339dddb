package dev.herald.calls;

import com.fasterxml.jackson.databind.JsonNode;
import dev.herald.api.ApiException;
import dev.herald.api.JsonBodies;
import dev.herald.auth.Caller;
import dev.herald.auth.Scope;
import io.micronaut.core.annotation.Nullable;
import io.micronaut.http.MediaType;
import io.micronaut.http.annotation.Body;
import io.micronaut.http.annotation.Controller;
import io.micronaut.http.annotation.Delete;
import io.micronaut.http.annotation.Get;
import io.micronaut.http.annotation.PathVariable;
import io.micronaut.http.annotation.Post;
import io.micronaut.http.annotation.QueryValue;
import io.micronaut.security.annotation.Secured;
import io.micronaut.security.authentication.Authentication;
import io.micronaut.security.rules.SecurityRule;
import io.swagger.v3.oas.annotations.Operation;
import io.swagger.v3.oas.annotations.media.Content;
import io.swagger.v3.oas.annotations.media.Schema;
import io.swagger.v3.oas.annotations.parameters.RequestBody;
import io.swagger.v3.oas.annotations.tags.Tag;

import java.util.concurrent.CompletableFuture;
import java.util.regex.Pattern;

/**
 * {@code /v1/calls} (app key, scope {@code calls}): ring a callee's devices, end the call, look at it.
 * Nothing here blocks an event loop: the database work and the gateways' answers complete the futures.
 */
@Controller("/v1/calls")
@Secured(SecurityRule.IS_AUTHENTICATED)
@Tag(name = "Calls")
class CallController {

    private static final Pattern CALL_ID = Pattern.compile("[A-Za-z0-9._-]{1,128}");

    private final CallService calls;
    private final JsonBodies bodies;

    CallController(CallService calls, JsonBodies bodies) {
        this.calls = calls;
        this.bodies = bodies;
    }

    @Post(consumes = MediaType.APPLICATION_JSON)
    @Operation(summary = "Ring every device of the callee (200 once every gateway acknowledged, or its deadline passed); "
            + "the same callId again while it rings answers the same call without ringing twice")
    CompletableFuture<CallView> ring(
            Authentication authentication,
            @RequestBody(content = @Content(schema = @Schema(ref = "https://herald.dev/schema/call-request.schema.json")))
            @Body byte[] body) {
        Caller.AppKey key = Caller.of(authentication).requireScope(Scope.CALLS);
        JsonNode node = bodies.validate(body, "call-request");
        return calls.ring(key, CallRequest.of(node)).thenApply(answer -> CallView.of(answer, false));
    }

    @Delete("/{callId}")
    @Operation(summary = "End a call: call.ended to every device that rang (a second DELETE sends nothing again)")
    CompletableFuture<CallView> end(Authentication authentication, @PathVariable String callId,
                                    @Nullable @QueryValue String reason) {
        Caller.AppKey key = Caller.of(authentication).requireScope(Scope.CALLS);
        checkId(callId);
        EndReason why = reason == null ? EndReason.CANCELLED : EndReason.fromClient(reason)
                .orElseThrow(() -> ApiException.invalid("reason", "must be answered, declined or cancelled"));
        return calls.end(key, callId, why).thenApply(answer -> CallView.of(answer, true));
    }

    @Get("/{callId}")
    @Operation(summary = "A call: its status, its routes, and the call.missed notification when it timed out")
    CompletableFuture<CallView> get(Authentication authentication, @PathVariable String callId) {
        Caller.AppKey key = Caller.of(authentication).requireScope(Scope.CALLS);
        checkId(callId);
        return calls.find(key, callId).thenApply(answer -> CallView.of(answer, false));
    }

    private static void checkId(String callId) {
        if (!CALL_ID.matcher(callId).matches()) {
            throw ApiException.invalid("callId", "must be 1 to 128 of A-Z, a-z, 0-9, '.', '_' and '-'");
        }
    }
}
