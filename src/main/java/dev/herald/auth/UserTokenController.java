package dev.herald.auth;

import dev.herald.api.ApiException;
import dev.herald.api.JsonBodies;
import io.micronaut.core.annotation.Nullable;
import io.micronaut.http.HttpResponse;
import io.micronaut.http.HttpStatus;
import io.micronaut.http.MediaType;
import io.micronaut.http.annotation.Body;
import io.micronaut.http.annotation.Controller;
import io.micronaut.http.annotation.PathVariable;
import io.micronaut.http.annotation.Post;
import io.micronaut.security.annotation.Secured;
import io.micronaut.security.authentication.Authentication;
import io.micronaut.security.rules.SecurityRule;
import io.micronaut.serde.annotation.Serdeable;
import io.swagger.v3.oas.annotations.Operation;
import io.swagger.v3.oas.annotations.media.Content;
import io.swagger.v3.oas.annotations.media.Schema;
import io.swagger.v3.oas.annotations.parameters.RequestBody;
import io.swagger.v3.oas.annotations.tags.Tag;

import java.time.Instant;

/** {@code POST /v1/users/{userId}/tokens}: an app backend (scope {@code users}) mints a token for one of its users. */
@Controller("/v1/users/{userId}/tokens")
@Secured(SecurityRule.IS_AUTHENTICATED)
@Tag(name = "User tokens")
class UserTokenController {

    static final long DEFAULT_TTL_SECONDS = 3600;

    private final UserTokens tokens;
    private final JsonBodies bodies;

    UserTokenController(UserTokens tokens, JsonBodies bodies) {
        this.tokens = tokens;
        this.bodies = bodies;
    }

    @Serdeable
    record TokenRequest(@Nullable Long ttlSeconds) {
    }

    @Serdeable
    record TokenView(String token, Instant expiresAt) {
    }

    @Post(consumes = MediaType.APPLICATION_JSON)
    @Operation(summary = "Mint a user token (JWT) for this user id")
    HttpResponse<TokenView> mint(Authentication authentication, @PathVariable String userId,
                                 @RequestBody(required = false,
                                         content = @Content(schema = @Schema(implementation = TokenRequest.class)))
                                 @Nullable @Body byte[] body) {
        Caller.of(authentication).requireScope(Scope.USERS);
        if (!UserIds.isValid(userId)) {
            throw ApiException.invalid("userId", "must be 1 to 128 characters without control characters or '/'");
        }
        long ttl = DEFAULT_TTL_SECONDS;
        if (body != null && body.length > 0) {
            TokenRequest request = bodies.read(body, "user-token-request", TokenRequest.class);
            if (request.ttlSeconds() != null) {
                ttl = request.ttlSeconds();
            }
        }
        UserTokens.Minted minted = tokens.mint(userId, ttl);
        return HttpResponse.status(HttpStatus.CREATED).body(new TokenView(minted.token(), minted.expiresAt()));
    }
}
