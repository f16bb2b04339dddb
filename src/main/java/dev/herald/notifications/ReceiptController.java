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
        if (!known && deliveries.shownNotStored(notificationId, user.userId())) {
            throw ApiException.notStoredYet("This notification");
        }
        if (notWrittenYet(notificationId, user.userId(), installationId, known)) {
            // what the receipt changed for the user's other deliveries is rolled back with the answer
            throw ApiException.notWrittenYet("This notification's delivery");
        }
        if (!known) {
            // its chunk may have been stored in between
            known = deliveries.receipt(notificationId, user.userId(), installationId, opened, clock.instant());
        }
        if (!known) {
            throw ApiException.notFound("Notification");
        }
    }

    /**
     * Whether the delivery a receipt names may be moments from being written: a fan-out or a device send
     * still routing writes each delivery once its push was sent (this user's none yet, or not this device's while
     * their other device's is).
     */
    private boolean notWrittenYet(String notificationId, String userId, String installationId, boolean known) {
        if (known && installationId == null || !deliveries.fanningOut(notificationId)) {
            return false;
        }
        return !known || !deliveries.hasPush(notificationId, userId, installationId);
    }
}
