package dev.herald.preferences;

import com.fasterxml.jackson.databind.JsonNode;
import dev.herald.api.JsonBodies;
import dev.herald.auth.Caller;
import io.micronaut.http.MediaType;
import io.micronaut.http.annotation.Body;
import io.micronaut.http.annotation.Controller;
import io.micronaut.http.annotation.Get;
import io.micronaut.http.annotation.Put;
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

import java.time.Clock;

/** {@code /v1/preferences} (user JWT): the caller's channels, categories, email, locale, timezone and quiet hours. */
@Controller("/v1/preferences")
@Secured(SecurityRule.IS_AUTHENTICATED)
@Tag(name = "Preferences")
class PreferencesController {

    private final PreferenceStore store;
    private final PreferenceCache cache;
    private final JsonBodies bodies;
    private final Clock clock;

    PreferencesController(PreferenceStore store, PreferenceCache cache, JsonBodies bodies, Clock clock) {
        this.store = store;
        this.cache = cache;
        this.bodies = bodies;
        this.clock = clock;
    }

    @Get(produces = MediaType.APPLICATION_JSON)
    @ExecuteOn(TaskExecutors.BLOCKING)
    @Operation(summary = "The caller's preferences, every default filled in")
    String get(Authentication authentication) {
        Caller.User user = Caller.of(authentication).requireUser();
        return store.find(user.userId()).toJson().toString();
    }

    @Put(consumes = MediaType.APPLICATION_JSON, produces = MediaType.APPLICATION_JSON)
    @ExecuteOn(TaskExecutors.BLOCKING)
    @Operation(summary = "Replace the caller's preferences (fields left out take their defaults)")
    String put(Authentication authentication,
               @RequestBody(content = @Content(schema = @Schema(ref = "https://herald.dev/schema/preferences.schema.json")))
               @Body byte[] body) {
        Caller.User user = Caller.of(authentication).requireUser();
        JsonNode doc = bodies.validate(body, "preferences");
        Preferences preferences = Preferences.read(doc);
        store.save(user.userId(), preferences, clock.instant());
        cache.invalidate(user.userId());
        return preferences.toJson().toString();
    }
}
