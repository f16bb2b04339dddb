package dev.herald.devices;

import dev.herald.api.ApiException;
import dev.herald.api.Cursors;
import dev.herald.api.EventLoopAnswers;
import dev.herald.api.JsonBodies;
import dev.herald.api.Page;
import dev.herald.auth.Caller;
import io.micronaut.core.annotation.Nullable;
import io.micronaut.http.HttpRequest;
import io.micronaut.http.HttpResponse;
import io.micronaut.http.HttpStatus;
import io.micronaut.http.MediaType;
import io.micronaut.http.annotation.Body;
import io.micronaut.http.annotation.Controller;
import io.micronaut.http.annotation.Delete;
import io.micronaut.http.annotation.Get;
import io.micronaut.http.annotation.PathVariable;
import io.micronaut.http.annotation.Put;
import io.micronaut.http.annotation.QueryValue;
import io.micronaut.http.annotation.Status;
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

import java.time.ZoneId;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.Set;
import java.util.regex.Pattern;

/** {@code /v1/devices}: an end user's own app installations (user JWT). Another user's device is 404. */
@Controller("/v1/devices")
@Secured(SecurityRule.IS_AUTHENTICATED)
@Tag(name = "Devices")
class DeviceController {

    private static final Pattern INSTALLATION_ID = Pattern.compile("[A-Za-z0-9._-]{1,128}");
    private static final Set<String> ZONES = ZoneId.getAvailableZoneIds();

    private final DeviceStore store;
    private final RegistrationWriter writer;
    private final JsonBodies bodies;

    DeviceController(DeviceStore store, RegistrationWriter writer, JsonBodies bodies) {
        this.store = store;
        this.writer = writer;
        this.bodies = bodies;
    }

    @Put(uri = "/{installationId}", consumes = MediaType.APPLICATION_JSON)
    @Operation(summary = "Register or refresh this installation's push tokens (201 created, 200 updated)")
    CompletableFuture<HttpResponse<Device>> register(HttpRequest<?> request, Authentication authentication,
                                                     @PathVariable String installationId,
                                                     @RequestBody(content = @Content(schema = @Schema(implementation = DeviceRegistration.class)))
                                                     @Body byte[] body) {
        Caller.User user = Caller.of(authentication).requireUser();
        DeviceRegistration registration = registration(bodies, installationId, body);
        // answered on the request's own event loop once stored
        return writer.submit(user.userId(), installationId, registration, EventLoopAnswers.loopOf(request))
                .thenApply(registered -> HttpResponse.status(registered.created() ? HttpStatus.CREATED : HttpStatus.OK)
                        .body(registered.device()));
    }

    @Get
    @Operation(summary = "The caller's devices")
    @ExecuteOn(TaskExecutors.BLOCKING)
    Page<Device> list(Authentication authentication, @Nullable @QueryValue String cursor,
                      @Nullable @QueryValue Integer limit) {
        Caller.User user = Caller.of(authentication).requireUser();
        int pageSize = Cursors.limit(limit);
        List<Device> rows = store.listForUser(user.userId(), Cursors.decode(cursor), pageSize + 1);
        return Page.of(rows, pageSize, Device::installationId);
    }

    @Get("/{installationId}")
    @ExecuteOn(TaskExecutors.BLOCKING)
    @Operation(summary = "One of the caller's devices")
    Device get(Authentication authentication, @PathVariable String installationId) {
        Caller.User user = Caller.of(authentication).requireUser();
        checkInstallationId(installationId);
        return store.find(user.userId(), installationId).orElseThrow(() -> ApiException.notFound("Device"));
    }

    @Delete("/{installationId}")
    @ExecuteOn(TaskExecutors.BLOCKING)
    @Status(HttpStatus.NO_CONTENT)
    @Operation(summary = "Forget this installation and its tokens")
    void delete(Authentication authentication, @PathVariable String installationId) {
        Caller.User user = Caller.of(authentication).requireUser();
        checkInstallationId(installationId);
        if (!store.delete(user.userId(), installationId)) {
            throw ApiException.notFound("Device");
        }
    }

    /**
     * A registration's installation id and body, checked as the contract says (the JSON Schema, then the
     * time zone): also what {@link DirectRegistrations} serves, so both paths refuse alike.
     *
     * @throws ApiException 400 naming the field
     */
    static DeviceRegistration registration(JsonBodies bodies, String installationId, byte[] body) {
        checkInstallationId(installationId);
        DeviceRegistration registration = bodies.read(body, "device-registration", DeviceRegistration.class);
        if (registration.timezone() != null && !ZONES.contains(registration.timezone())) {
            throw ApiException.invalid("timezone", "must be an IANA time zone id such as Europe/Paris");
        }
        return registration;
    }

    private static void checkInstallationId(String installationId) {
        if (!INSTALLATION_ID.matcher(installationId).matches()) {
            throw ApiException.invalid("installationId", "must be 1 to 128 of A-Z, a-z, 0-9, '.', '_' and '-'");
        }
    }
}
