package dev.herald.notifications;

import dev.herald.api.ApiException;
import dev.herald.api.Cursors;
import dev.herald.api.EventLoopAnswers;
import dev.herald.api.Page;
import dev.herald.api.JsonBodies;
import dev.herald.auth.Caller;
import dev.herald.auth.Scope;
import dev.herald.delivery.DeliveryStore;
import dev.herald.delivery.DeliveryView;
import io.micronaut.core.annotation.Nullable;
import io.micronaut.http.HttpRequest;
import io.micronaut.http.HttpResponse;
import io.micronaut.http.HttpStatus;
import io.micronaut.http.MediaType;
import io.micronaut.http.annotation.Body;
import io.micronaut.http.annotation.Controller;
import io.micronaut.http.annotation.Delete;
import io.micronaut.http.annotation.Get;
import io.micronaut.http.annotation.Header;
import io.micronaut.http.annotation.PathVariable;
import io.micronaut.http.annotation.Post;
import io.micronaut.http.annotation.QueryValue;
import io.micronaut.http.annotation.Status;
import io.micronaut.scheduling.TaskExecutors;
import io.micronaut.scheduling.annotation.ExecuteOn;
import io.micronaut.security.annotation.Secured;
import io.micronaut.security.authentication.Authentication;
import io.micronaut.security.rules.SecurityRule;
import io.micrometer.core.instrument.MeterRegistry;
import io.swagger.v3.oas.annotations.Operation;
import io.swagger.v3.oas.annotations.media.Content;
import io.swagger.v3.oas.annotations.media.Schema;
import io.swagger.v3.oas.annotations.parameters.RequestBody;
import io.swagger.v3.oas.annotations.tags.Tag;

import java.time.Clock;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.regex.Pattern;

/** {@code /v1/notifications} (app key, scope {@code send}): send, follow and cancel notifications. */
@Controller("/v1/notifications")
@Secured(SecurityRule.IS_AUTHENTICATED)
@Tag(name = "Notifications")
class NotificationController {

    private static final Pattern NOTIFICATION_ID = Pattern.compile("ntf_[0-9a-f]{32}");

    private final NotificationService service;
    private final NotificationIntake intake;
    private final NotificationStore store;
    private final DeliveryStore deliveries;
    private final JsonBodies bodies;
    private final Clock clock;
    private final MeterRegistry meters;

    NotificationController(NotificationService service, NotificationIntake intake, NotificationStore store,
                           DeliveryStore deliveries, JsonBodies bodies, Clock clock, MeterRegistry meters) {
        this.intake = intake;
        this.service = service;
        this.store = store;
        this.deliveries = deliveries;
        this.bodies = bodies;
        this.clock = clock;
        this.meters = meters;
    }

    @Post(consumes = MediaType.APPLICATION_JSON)
    @Operation(summary = "Send a notification to users, devices or tags of the key's app (202 once stored)")
    CompletableFuture<HttpResponse<NotificationViews.AcceptedView>> send(
            HttpRequest<?> request,
            Authentication authentication,
            @Nullable @Header("Idempotency-Key") String idempotencyKey,
            @RequestBody(content = @Content(schema = @Schema(ref = "https://herald.dev/schema/notification-request.schema.json")))
            @Body byte[] body) {
        Caller.AppKey key = Caller.of(authentication).requireScope(Scope.SEND);
        return intake.accept(key, body, idempotencyKey, "Idempotency-Key", EventLoopAnswers.loopOf(request)).thenApply(accepted ->
                HttpResponse.<NotificationViews.AcceptedView>status(HttpStatus.ACCEPTED)
                        .body(new NotificationViews.AcceptedView(accepted.id(), accepted.status(), accepted.recipients())));
    }

    @Get("/{id}")
    @ExecuteOn(TaskExecutors.BLOCKING)
    @Operation(summary = "A notification's status, delivery counts and deliveries (paged)")
    NotificationViews.StatusView get(Authentication authentication, @PathVariable String id,
                                     @Nullable @QueryValue String cursor, @Nullable @QueryValue Integer limit) {
        Caller.AppKey key = Caller.of(authentication).requireScope(Scope.SEND);
        int pageSize = Cursors.limit(limit);
        String after = Cursors.decode(cursor);
        long afterId;
        try {
            afterId = after == null ? 0 : Long.parseLong(after);
        } catch (NumberFormatException e) {
            throw ApiException.invalid("cursor", "is not a cursor this list gave out");
        }
        StoredNotification n = find(key, id);
        // read before the deliveries: a job's end writes its last deliveries in the same transaction
        // (a device send's are written once its pushes have their outcomes, as its job ends)
        boolean jobLeft = "routing".equals(n.status()) && !n.routed() && deliveries.hasJob(n.id());
        Map<String, Long> counts = deliveries.counts(n.id());
        List<DeliveryStore.Row> rows = deliveries.page(n.id(), afterId, pageSize + 1);
        Page<DeliveryStore.Row> page = Page.of(rows, pageSize, r -> Long.toString(r.id()));
        String status = n.status();
        if ("routing".equals(status) && !jobLeft && !counts.containsKey("queued")) {
            status = "done";
        }
        return new NotificationViews.StatusView(n.id(), status, n.recipients(), n.createdAt(), n.sendAt(),
                n.expiresAt(), counts,
                new Page<DeliveryView>(page.items().stream().map(DeliveryStore.Row::view).toList(), page.nextCursor()));
    }

    @Delete("/{id}")
    @ExecuteOn(TaskExecutors.BLOCKING)
    @Status(HttpStatus.NO_CONTENT)
    @Operation(summary = "Cancel a scheduled notification (409 once routing began)")
    void cancel(Authentication authentication, @PathVariable String id) {
        Caller.AppKey key = Caller.of(authentication).requireScope(Scope.SEND);
        checkId(id);
        boolean cancelled = service.cancel(key.appId(), id).orElseThrow(() -> ApiException.notFound("Notification"));
        if (!cancelled) {
            throw ApiException.conflict("Routing of this notification began; it can no longer be cancelled");
        }
    }

    private StoredNotification find(Caller.AppKey key, String id) {
        checkId(id);
        return store.find(key.appId(), id).orElseThrow(() -> ApiException.notFound("Notification"));
    }

    private static void checkId(String id) {
        if (!NOTIFICATION_ID.matcher(id).matches()) {
            throw ApiException.notFound("Notification");
        }
    }
}
