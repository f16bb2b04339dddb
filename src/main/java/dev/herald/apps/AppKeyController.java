package dev.herald.apps;

import dev.herald.api.ApiException;
import dev.herald.api.Cursors;
import dev.herald.api.JsonBodies;
import dev.herald.api.Page;
import dev.herald.auth.ApiKeyStore;
import dev.herald.auth.Caller;
import dev.herald.auth.Scope;
import io.micronaut.core.annotation.Nullable;
import io.micronaut.http.HttpResponse;
import io.micronaut.http.HttpStatus;
import io.micronaut.http.MediaType;
import io.micronaut.http.annotation.Body;
import io.micronaut.http.annotation.Controller;
import io.micronaut.http.annotation.Delete;
import io.micronaut.http.annotation.Get;
import io.micronaut.http.annotation.PathVariable;
import io.micronaut.http.annotation.Post;
import io.micronaut.http.annotation.QueryValue;
import io.micronaut.http.annotation.Status;
import io.micronaut.scheduling.TaskExecutors;
import io.micronaut.scheduling.annotation.ExecuteOn;
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
import java.util.EnumSet;
import java.util.List;
import java.util.Set;
import java.util.stream.Collectors;

/** {@code /v1/apps/{appId}/keys}: app keys are shown once, listed without secrets, revocable. */
@Controller("/v1/apps/{appId}/keys")
@Secured(SecurityRule.IS_AUTHENTICATED)
@ExecuteOn(TaskExecutors.BLOCKING)
@Tag(name = "Apps")
class AppKeyController {

    private final ApiKeyStore keys;
    private final AppStore apps;
    private final JsonBodies bodies;

    AppKeyController(ApiKeyStore keys, AppStore apps, JsonBodies bodies) {
        this.keys = keys;
        this.apps = apps;
        this.bodies = bodies;
    }

    @Serdeable
    record KeyRequest(String name, String mode, List<String> scopes) {
    }

    /** A key as listed; {@code key} is present only in the answer that created it. */
    @Serdeable
    record KeyView(String id, String name, String mode, List<String> scopes, String prefix, Instant createdAt,
                   @Nullable Instant revokedAt, @Nullable String key) {

        static KeyView of(ApiKeyStore.KeyInfo info, String key) {
            return new KeyView(info.id(), info.name(), info.test() ? "test" : "live",
                    info.scopes().stream().map(Scope::wire).sorted().toList(), info.prefix(), info.createdAt(),
                    info.revokedAt(), key);
        }
    }

    @Post(consumes = MediaType.APPLICATION_JSON)
    @Operation(summary = "Create an app key; the key is in this answer only")
    HttpResponse<KeyView> create(Authentication authentication, @PathVariable String appId,
                                 @RequestBody(content = @Content(schema = @Schema(implementation = KeyRequest.class)))
                                 @Body byte[] body) {
        Caller.of(authentication).requireAppAdmin(appId);
        KeyRequest request = bodies.read(body, "app-key-request", KeyRequest.class);
        apps.find(appId).orElseThrow(() -> ApiException.notFound("App"));
        Set<Scope> scopes = request.scopes().stream().map(s -> Scope.fromWire(s).orElseThrow())
                .collect(Collectors.toCollection(() -> EnumSet.noneOf(Scope.class)));
        ApiKeyStore.CreatedKey created = keys.create(appId, request.name(), "test".equals(request.mode()), scopes);
        return HttpResponse.status(HttpStatus.CREATED).body(KeyView.of(created.info(), created.key()));
    }

    @Get
    @Operation(summary = "List an app's keys, without their secrets")
    Page<KeyView> list(Authentication authentication, @PathVariable String appId, @Nullable @QueryValue String cursor,
                       @Nullable @QueryValue Integer limit) {
        Caller.of(authentication).requireAppAdmin(appId);
        apps.find(appId).orElseThrow(() -> ApiException.notFound("App"));
        int pageSize = Cursors.limit(limit);
        List<KeyView> rows = keys.list(appId, Cursors.decode(cursor), pageSize + 1).stream()
                .map(info -> KeyView.of(info, null)).toList();
        return Page.of(rows, pageSize, KeyView::id);
    }

    @Delete("/{keyId}")
    @Status(HttpStatus.NO_CONTENT)
    @Operation(summary = "Revoke a key: refused on every node within 1 s")
    void revoke(Authentication authentication, @PathVariable String appId, @PathVariable String keyId) {
        Caller.of(authentication).requireAppAdmin(appId);
        if (!keys.revoke(appId, keyId)) {
            throw ApiException.notFound("Key");
        }
    }
}
