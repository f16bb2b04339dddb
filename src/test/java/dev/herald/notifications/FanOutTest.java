package dev.herald.notifications;

import com.fasterxml.jackson.databind.JsonNode;
import dev.herald.support.Api;
import dev.herald.support.FakeFcm;
import dev.herald.support.GatewayTest;
import dev.herald.support.MockApns;
import dev.herald.support.Sql;
import io.micronaut.test.extensions.junit5.annotation.MicronautTest;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import static dev.herald.support.Fixtures.androidDevice;
import static dev.herald.support.Fixtures.apnsToken;
import static dev.herald.support.Fixtures.fcmToken;
import static dev.herald.support.Fixtures.iosDevice;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/**
 * Tag and device targets routed by a job go pushes first: each chunk of devices is sent, then written
 * with its outcomes while the job moves past it. Chunks of 4 here, so every target spans several.
 */
@MicronautTest(transactional = false)
class FanOutTest extends GatewayTest {

    private static final Duration DEADLINE = Duration.ofSeconds(20);

    @jakarta.inject.Inject
    Sql sql;

    @Override
    protected Map<String, String> moreProperties() {
        return Map.of("herald.delivery.fan-out-chunk", "4");
    }

    private Map<String, Object> tagged(Map<String, Object> device, String tag) {
        device.put("tags", List.of(tag));
        return device;
    }

    @Test
    void everyTaggedDeviceGetsOnePushAndOneDeliveryWithItsOutcome() {
        String tag = "fan-" + apnsToken().substring(0, 8);
        Map<String, String> iosTokens = new HashMap<>();
        for (int i = 0; i < 7; i++) {
            String token = apnsToken();
            iosTokens.put(register(tag + "-ios-" + i, tagged(iosDevice(tenant.app(), token), tag)), token);
        }
        Map<String, String> androidTokens = new HashMap<>();
        for (int i = 0; i < 4; i++) {
            String token = fcmToken();
            androidTokens.put(register(tag + "-android-" + i, tagged(androidDevice(tenant.app(), token), tag)), token);
        }
        String untagged = apnsToken();
        register(tag + "-untagged", iosDevice(tenant.app(), untagged));
        String dead = tag + "-ios-2";
        apns.answer(iosTokens.get(dead), MockApns.Answer.unregistered(Instant.now().plusSeconds(5)));
        String throttled = tag + "-android-1";
        fcm.answer(androidTokens.get(throttled), FakeFcm.Answer.quotaExceeded("1"));

        String id = sendNotification(Map.of("to", Map.of("tags", List.of(tag)), "title", "Sale"));
        await().atMost(DEADLINE).until(() -> fcmSendsTo(androidTokens.get(throttled)).size() >= 1);
        fcm.answer(androidTokens.get(throttled), FakeFcm.Answer.ok());
        JsonNode status = awaitDone(id);

        assertThat(status.path("counts").path("sent").asInt()).as(status.toString()).isEqualTo(10);
        assertThat(status.path("counts").path("failed").asInt()).isEqualTo(1);
        Map<String, JsonNode> deliveries = byInstallation(status);
        List<String> expected = new ArrayList<>(iosTokens.keySet());
        expected.addAll(androidTokens.keySet());
        assertThat(deliveries.keySet()).containsExactlyInAnyOrderElementsOf(expected);
        for (String installation : expected) {
            JsonNode d = deliveries.get(installation);
            if (installation.equals(dead)) {
                assertThat(d.path("status").asText()).isEqualTo("failed");
                assertThat(d.path("reason").asText()).isEqualTo("Unregistered");
                assertThat(d.path("attempts").asInt()).isEqualTo(1);
            } else if (installation.equals(throttled)) {
                assertThat(d.path("status").asText()).isEqualTo("sent");
                assertThat(d.path("attempts").asInt()).as("retried from the queue").isGreaterThanOrEqualTo(2);
            } else {
                assertThat(d.path("status").asText()).as(installation).isEqualTo("sent");
                assertThat(d.path("attempts").asInt()).as(installation).isEqualTo(1);
            }
        }
        iosTokens.forEach((installation, token) -> assertThat(apns.receivedFor(token)).as(installation).hasSize(1));
        androidTokens.forEach((installation, token) -> assertThat(fcmSendsTo(token).size()).as(installation)
                .isEqualTo(installation.equals(throttled) ? 2 : 1));
        assertThat(apns.receivedFor(untagged)).isEmpty();
        await().atMost(DEADLINE).untilAsserted(() -> assertThat(sql.count(
                "SELECT count(*) FROM devices WHERE installation_id = ? AND push_token IS NULL", dead)).isEqualTo(1L));
        assertThat(sql.count("SELECT count(*) FROM jobs WHERE notification_id = ?", id)).isZero();

        // an operator deleting the notification deletes its deliveries with it
        assertThat(sql.update("DELETE FROM notifications WHERE id = ?", id)).isEqualTo(1);
        assertThat(sql.count("SELECT count(*) FROM deliveries WHERE notification_id = ?", id)).isZero();
    }

    @Test
    void aDeviceTargetTooLargeToRouteWhileAcceptingIsSentOnceAndAccountedFor() {
        String prefix = "many-" + apnsToken().substring(0, 8);
        List<String> installations = new ArrayList<>();
        Map<String, String> tokens = new HashMap<>();
        for (int i = 0; i < 6; i++) {
            String token = apnsToken();
            tokens.put(register(prefix + "-" + i, iosDevice(tenant.app(), token)), token);
            installations.add(prefix + "-" + i);
        }
        // ids that name no device pad the target past what is routed while accepting
        for (int i = 0; i < NotificationService.ROUTE_WHILE_ACCEPTING; i++) {
            installations.add(prefix + "-unknown-" + i);
        }

        JsonNode status = awaitDone(sendNotification(Map.of("to", Map.of("devices", installations), "title", "Hello")));

        assertThat(status.path("counts").path("sent").asInt()).as(status.toString()).isEqualTo(6);
        assertThat(byInstallation(status).keySet()).containsExactlyInAnyOrderElementsOf(tokens.keySet());
        tokens.forEach((installation, token) -> assertThat(apns.receivedFor(token)).as(installation).hasSize(1));
    }

    @Test
    void aJobTakenOverGoesOnAfterTheLastChunkWritten() {
        String tag = "resume-" + apnsToken().substring(0, 8);
        List<String> tokens = new ArrayList<>();
        for (int i = 0; i < 9; i++) {
            String token = apnsToken();
            register(tag + "-" + i, tagged(iosDevice(tenant.app(), token), tag));
            tokens.add(token);
        }
        // held until later; then, as a node that died after writing the chunks up to device 3 left it
        String id = sendNotification(Map.of("to", Map.of("tags", List.of(tag)), "title", "Resumed",
                "sendAt", Instant.now().plusSeconds(3600).toString()));
        assertThat(sql.update("UPDATE notifications SET status = 'routing' WHERE id = ?", id)).isEqualTo(1);
        assertThat(sql.update("UPDATE jobs SET cursor = ?, run_at = now() WHERE notification_id = ?", tag + "-3", id))
                .isEqualTo(1);

        JsonNode status = awaitDone(id);

        assertThat(status.path("counts").path("sent").asInt()).isEqualTo(5);
        for (int i = 0; i < 9; i++) {
            assertThat(apns.receivedFor(tokens.get(i))).as("device " + i).hasSize(i <= 3 ? 0 : 1);
        }
    }

    @Test
    void aReceiptForADeliveryNotWrittenYetIsAskedAgainThenCounts() {
        String tag = "receipt-" + apnsToken().substring(0, 8);
        String token = apnsToken();
        String installation = register(tag + "-0", tagged(iosDevice(tenant.app(), token), tag));
        MockApns.Gate held = apns.hold();
        String id;
        try {
            id = sendNotification(Map.of("to", Map.of("tags", List.of(tag)), "title", "Held"));
            await().atMost(DEADLINE).until(() -> held.waiting() >= 1);

            JsonNode inFlight = api.get("/v1/notifications/" + id, tenant.key()).json();
            assertThat(inFlight.path("deliveries").path("items")).as("written with their outcomes, not before")
                    .isEmpty();
            assertThat(inFlight.path("status").asText()).isEqualTo("routing");

            Api.Response early = api.post("/v1/receipts", tenant.userToken(),
                    Map.of("notificationId", id, "installationId", installation, "event", "received"));
            assertThat(early.status()).as(early.toString()).isEqualTo(503);
            assertThat(early.headers().firstValue("Retry-After")).contains("1");
            assertThat(early.headers().firstValue("Content-Type").orElse("")).startsWith("application/problem+json");
        } finally {
            held.open();
        }
        awaitDone(id);

        assertThat(api.post("/v1/receipts", tenant.userToken(),
                Map.of("notificationId", id, "installationId", installation, "event", "received")).status()).isEqualTo(204);
        JsonNode d = byInstallation(api.get("/v1/notifications/" + id, tenant.key()).json()).get(installation);
        assertThat(d.path("status").asText()).isEqualTo("delivered");
    }

    @Test
    void aReceiptForOneDeviceWaitsForItsOwnDeliveryWhileAnotherOfTheUsersIsWritten() {
        String tag = "two-" + apnsToken().substring(0, 8);
        String phone = register(tag + "-a", tagged(iosDevice(tenant.app(), apnsToken()), tag));
        String tablet = register(tag + "-b", tagged(iosDevice(tenant.app(), apnsToken()), tag));
        // mid fan-out, as a node leaves it when the phone's chunk is written and the tablet's is not
        String id = sendNotification(Map.of("to", Map.of("tags", List.of(tag)), "title", "Two devices",
                "sendAt", Instant.now().plusSeconds(3600).toString()));
        assertThat(sql.update("UPDATE notifications SET status = 'routing' WHERE id = ?", id)).isEqualTo(1);
        assertThat(sql.update("""
                INSERT INTO deliveries (notification_id, user_id, installation_id, channel, status, attempts, updated_at)
                VALUES (?, ?, ?, 'push', 'sent', 1, now())""", id, tenant.userId(), phone)).isEqualTo(1);

        Api.Response forTablet = api.post("/v1/receipts", tenant.userToken(),
                Map.of("notificationId", id, "installationId", tablet, "event", "received"));
        assertThat(forTablet.status()).as(forTablet.toString()).isEqualTo(503);
        assertThat(forTablet.headers().firstValue("Retry-After")).contains("1");
        assertThat(api.post("/v1/receipts", tenant.userToken(),
                Map.of("notificationId", id, "installationId", phone, "event", "received")).status()).isEqualTo(204);
        assertThat(sql.string("SELECT status FROM deliveries WHERE notification_id = ? AND installation_id = ?", id, phone))
                .isEqualTo("delivered");
    }

    @Test
    void aReceiptForAUserTargetStillRoutingIsNotHeldBack() {
        String phone = register("user-" + apnsToken().substring(0, 8), iosDevice(tenant.app(), apnsToken()));
        // a user target routed by a job (no fan-out): its chunks write the user's steps before any push
        String id = sendNotification(Map.of("to", Map.of("users", List.of(tenant.userId())), "title", "Inbox only",
                "channels", List.of("inApp"), "sendAt", Instant.now().plusSeconds(3600).toString()));
        assertThat(sql.update("UPDATE notifications SET status = 'routing' WHERE id = ?", id)).isEqualTo(1);
        assertThat(sql.update("""
                INSERT INTO deliveries (notification_id, user_id, channel, status, attempts, updated_at)
                VALUES (?, ?, 'inApp', 'sent', 0, now())""", id, tenant.userId())).isEqualTo(1);

        Api.Response opened = api.post("/v1/receipts", tenant.userToken(),
                Map.of("notificationId", id, "installationId", phone, "event", "opened"));

        assertThat(opened.status()).as(opened.toString()).isEqualTo(204);
        assertThat(sql.string("SELECT status FROM deliveries WHERE notification_id = ?", id)).isEqualTo("opened");
    }
}
