package dev.herald.live;

import dev.herald.api.ApiException;
import dev.herald.auth.Caller;
import dev.herald.auth.Scope;
import dev.herald.auth.UserIds;
import io.micronaut.http.HttpStatus;
import io.micronaut.http.annotation.Controller;
import io.micronaut.http.annotation.Get;
import io.micronaut.http.annotation.PathVariable;
import io.micronaut.http.annotation.Put;
import io.micronaut.http.annotation.Status;
import io.micronaut.scheduling.TaskExecutors;
import io.micronaut.scheduling.annotation.ExecuteOn;
import io.micronaut.security.annotation.Secured;
import io.micronaut.security.authentication.Authentication;
import io.micronaut.security.rules.SecurityRule;
import io.swagger.v3.oas.annotations.Operation;
import io.swagger.v3.oas.annotations.tags.Tag;

/** Presence: {@code PUT /v1/presence} (user JWT) and {@code GET /v1/users/{userId}/presence} (app key, scope users). */
@Controller
@Secured(SecurityRule.IS_AUTHENTICATED)
@Tag(name = "Presence")
class PresenceController {

    private final LiveHub hub;

    PresenceController(LiveHub hub) {
        this.hub = hub;
    }

    @Put("/v1/presence")
    @ExecuteOn(TaskExecutors.BLOCKING)
    @Status(HttpStatus.NO_CONTENT)
    @Operation(summary = "The caller counts as present for 60 s (for apps that keep their own socket)")
    void touch(Authentication authentication) {
        hub.touch(Caller.of(authentication).requireUser().userId());
    }

    @Get("/v1/users/{userId}/presence")
    @ExecuteOn(TaskExecutors.BLOCKING)
    @Operation(summary = "Whether a user is present, on how many streams, and when they were last seen")
    PresenceView presence(Authentication authentication, @PathVariable String userId) {
        Caller.of(authentication).requireScope(Scope.USERS);
        if (!UserIds.isValid(userId)) {
            throw ApiException.invalid("userId", "must be 1 to 128 characters, no control characters or '/'");
        }
        return hub.presence(userId);
    }
}
