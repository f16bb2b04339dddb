package dev.herald.notifications;

import com.fasterxml.jackson.databind.JsonNode;
import dev.herald.api.ApiException;
import dev.herald.api.JsonBodies;
import dev.herald.auth.Caller;
import dev.herald.delivery.DeliveryStore;
import io.micronaut.http.HttpStatus;
import io.micronaut.http.MediaType;
import io.micronaut.http.annotation.Body;
import io.micronaut.http.annotation.Controller;
import io.micronaut.http.annotation.Post;
import io.micronaut.http.annotation.Status;
import io.micronaut.scheduling.TaskExecutors;
import io.micronaut.scheduling.annotation.ExecuteOn;
import io.micronaut.security.annotation.Secured;
import io.micronaut.security.authentication.Authentication;
import io.micronaut.security.rules.SecurityRule;
import io.micronaut.transaction.annotation.Transactional;
import io.swagger.v3.oas.annotations.Operation;
import io.swagger.v3.oas.annotations.media.Content;
import io.swagger.v3.oas.annotations.media.Schema;
import io.swagger.v3.oas.annotations.parameters.RequestBody;
import io.swagger.v3.oas.annotations.tags.Tag;

import java.time.Clock;

/** {@code POST /v1/receipts} (user JWT): a device got or opened one of the user's notifications. */
@Controller("/v1/receipts")
@Secured(SecurityRule.IS_AUTHENTICATED)
@Tag(name = "Receipts")
class ReceiptController {

    private final DeliveryStore deliveries;
    private final JsonBodies bodies;
    private final Clock clock;

    ReceiptController(DeliveryStore deliveries, JsonBodies bodies, Clock clock) {
        this.deliveries = deliveries;
        this.bodies = bodies;
        this.clock = clock;
    }

    @Post(consumes = MediaType.APPLICATION_JSON)
    @ExecuteOn(TaskExecutors.BLOCKING)
    @Transactional
    @Status(HttpStatus.NO_CONTENT)
    @Operation(summary = "Move the caller's deliveries of a notification to delivered / opened (never backwards)")
    void receipt(Authentication authentication,
                 @RequestBody(content = @Content(schema = @Schema(ref = "https://herald.dev/schema/receipt-request.schema.json")))
                 @Body byte[] body) {
        Caller.User user = Caller.of(authentication).requireUser();
        JsonNode node = bodies.validate(body, "receipt-request");
        String installationId = node.hasNonNull("installationId") ? node.get("installationId").asText() : null;
        String notificationId = node.get("notificationId").asText();
        boolean opened = "opened".equals(node.get("event").asText());
        boolean known = deliveries.receipt(notificationId, user.userId(), installationId, opened, clock.instant());
        if (known && installationId != null && deliveries.fanningOut(notificationId)
                && !deliveries.hasPush(notificationId, user.userId(), installationId)) {
            // a fan-out writes each delivery once its push was sent: this device's may be moments away
            // (what the receipt changed for the user's other deliveries is rolled back with the answer)
            throw ApiException.notWrittenYet("This notification's delivery");
        }
        if (!known) {
            if (deliveries.shownNotStored(notificationId, user.userId())) {
                throw ApiException.notStoredYet("This notification");
            }
            if (deliveries.fanningOut(notificationId)) {
                // a fan-out writes each delivery once its push was sent: this one may be moments away
                throw ApiException.notWrittenYet("This notification's delivery");
            }
            // its chunk may have been stored in between
            known = deliveries.receipt(notificationId, user.userId(), installationId, opened, clock.instant());
        }
        if (!known) {
            throw ApiException.notFound("Notification");
        }
    }
}
