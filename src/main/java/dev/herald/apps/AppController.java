package dev.herald.apps;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.herald.api.ApiException;
import dev.herald.api.Cursors;
import dev.herald.api.JsonBodies;
import dev.herald.api.Page;
import dev.herald.auth.Caller;
import io.micronaut.core.annotation.Nullable;
import io.micronaut.http.HttpResponse;
import io.micronaut.http.MediaType;
import io.micronaut.http.annotation.Body;
import io.micronaut.http.annotation.Controller;
import io.micronaut.http.annotation.Get;
import io.micronaut.http.annotation.Patch;
import io.micronaut.http.annotation.PathVariable;
import io.micronaut.http.annotation.Post;
import io.micronaut.http.annotation.QueryValue;
import io.micronaut.scheduling.TaskExecutors;
import io.micronaut.scheduling.annotation.ExecuteOn;
import io.micronaut.security.annotation.Secured;
import io.micronaut.security.authentication.Authentication;
import io.micronaut.security.rules.SecurityRule;
import io.swagger.v3.oas.annotations.Operation;
import io.swagger.v3.oas.annotations.media.Content;
import io.swagger.v3.oas.annotations.media.Schema;
import io.swagger.v3.oas.annotations.parameters.RequestBody;
import io.swagger.v3.oas.annotations.tags.Tag;

import java.util.List;

/**
 * {@code /v1/apps}: the operator creates apps (admin key); an app key with scope {@code admin} may
 * read and change its own app. Secrets are write-only.
 */
@Controller("/v1/apps")
@Secured(SecurityRule.IS_AUTHENTICATED)
@ExecuteOn(TaskExecutors.BLOCKING)
@Tag(name = "Apps")
class AppController {

    static final String MERGE_PATCH = "application/merge-patch+json";

    private final AppStore store;
    private final JsonBodies bodies;
    private final AppSettingsValidator validator;

    AppController(AppStore store, JsonBodies bodies, AppSettingsValidator validator) {
        this.store = store;
        this.bodies = bodies;
        this.validator = validator;
    }

    @Post(consumes = MediaType.APPLICATION_JSON)
    @Operation(summary = "Create an app (admin key)")
    HttpResponse<AppView> create(Authentication authentication,
                                 @RequestBody(content = @Content(schema = @Schema(implementation = AppRequest.class)))
                                 @Body byte[] body) {
        Caller.of(authentication).requireAdmin();
        JsonNode document = bodies.validate(body, "app");
        validator.validate(document);
        AppStore.StoredApp app = store.create((ObjectNode) document)
                .orElseThrow(() -> ApiException.conflict("An app with id '" + document.path("id").asText() + "' exists"));
        return HttpResponse.created(AppView.of(app));
    }

    @Get
    @Operation(summary = "List apps (admin key)")
    Page<AppView> list(Authentication authentication, @Nullable @QueryValue String cursor, @Nullable @QueryValue Integer limit) {
        Caller.of(authentication).requireAdmin();
        int pageSize = Cursors.limit(limit);
        List<AppView> rows = store.list(Cursors.decode(cursor), pageSize + 1).stream().map(AppView::of).toList();
        return Page.of(rows, pageSize, AppView::id);
    }

    @Get("/{appId}")
    @Operation(summary = "Read an app (admin key, or its own app key with scope admin)")
    AppView get(Authentication authentication, @PathVariable String appId) {
        Caller.of(authentication).requireAppAdmin(appId);
        return AppView.of(store.find(appId).orElseThrow(() -> ApiException.notFound("App")));
    }

    @Patch(uri = "/{appId}", consumes = {MERGE_PATCH, MediaType.APPLICATION_JSON})
    @Operation(summary = "Change an app with a JSON merge patch (RFC 7386); null removes a block")
    AppView patch(Authentication authentication, @PathVariable String appId,
                  @RequestBody(description = "A JSON merge patch of the app (RFC 7386)",
                          content = @Content(schema = @Schema(implementation = AppRequest.class)))
                  @Body byte[] body) {
        Caller.of(authentication).requireAppAdmin(appId);
        JsonNode patch = bodies.parse(body);
        if (!patch.isObject()) {
            throw ApiException.invalid("", "a merge patch must be a JSON object");
        }
        if (patch.has("id") && !patch.get("id").asText().equals(appId)) {
            throw ApiException.invalid("id", "cannot be changed");
        }
        AppStore.StoredApp current = store.find(appId).orElseThrow(() -> ApiException.notFound("App"));
        JsonNode merged = MergePatch.apply(current.document(), patch);
        bodies.check(merged, "app");
        validator.validate(merged);
        return AppView.of(store.replace((ObjectNode) merged));
    }
}
