package dev.herald.webhooks;

import com.fasterxml.jackson.databind.JsonNode;
import dev.herald.support.Api;
import dev.herald.support.Fixtures;
import dev.herald.support.GatewayTest;
import dev.herald.support.MockApns;
import dev.herald.support.Sql;
import dev.herald.support.WebhookReceiver;
import io.micronaut.test.extensions.junit5.annotation.MicronautTest;
import jakarta.inject.Inject;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static dev.herald.support.Fixtures.apnsToken;
import static dev.herald.support.Fixtures.iosDevice;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/**
 * Webhooks end to end: a real receiver on loopback gets every event the contract lists, signed, in
 * order per notification, also after it was down for a while; a receiver that hangs slows neither
 * delivery nor another app's webhook; an event that cannot be delivered for 24 h ends failed.
 */
@MicronautTest(transactional = false)
class WebhookTest extends GatewayTest {

    private static final Duration DEADLINE = Duration.ofSeconds(30);
    private static final String SECRET = "whsec-test-0123456789abcdef";

    @Inject
    Sql sql;

    private WebhookReceiver receiver;

    @Override
    protected Map<String, String> moreProperties() {
        return Map.of("herald.webhook-allow-private", "true", "herald.webhooks.poll", "50ms");
    }

    @BeforeEach
    void receiver() {
        receiver = new WebhookReceiver();
        hook(tenant.app(), receiver);
    }

    @AfterEach
    void closeReceiver() {
        receiver.close();
    }

    private void hook(String app, WebhookReceiver to) {
        Api.Response r = api.patch("/v1/apps/" + app, Fixtures.ADMIN_KEY,
                Map.of("webhook", Map.of("url", to.url(), "secret", SECRET)));
        assertThat(r.status()).as(r.toString()).isEqualTo(200);
    }

    private String iphone(Fixtures.Tenant t, String installationId) {
        String token = apnsToken();
        Api.Response r = api.put("/v1/devices/" + installationId, t.userToken(), iosDevice(t.app(), token));
        assertThat(r.status()).as(r.toString()).isIn(200, 201);
        return token;
    }

    private String send(Fixtures.Tenant t, String title) {
        Map<String, Object> body = new LinkedHashMap<>();
        body.put("to", Map.of("users", List.of(t.userId())));
        body.put("title", title);
        Api.Response accepted = api.post("/v1/notifications", t.key(), body);
        assertThat(accepted.status()).as(accepted.toString()).isEqualTo(202);
        return accepted.json().path("id").asText();
    }

    private List<WebhookReceiver.Hook> eventsOf(WebhookReceiver from, String notificationId) {
        return from.accepted().stream().filter(h -> notificationId.equals(h.data().path("notificationId").asText())).toList();
    }

    private static void assertSigned(WebhookReceiver.Hook hook) {
        String[] parts = hook.signature().split(",");
        assertThat(parts).hasSize(2);
        assertThat(parts[0]).startsWith("t=");
        long t = Long.parseLong(parts[0].substring(2));
        assertThat(t).isCloseTo(Instant.now().getEpochSecond(), org.assertj.core.data.Offset.offset(120L));
        assertThat(parts[1]).isEqualTo("v1=" + WebhookSignature.hmac(SECRET, t + "." + hook.body()));
    }

    @Test
    void deliveryEventsArriveSignedAndInOrder() {
        String installation = "iphone-hook-" + tenant.userId();
        String token = iphone(tenant, installation);
        String id = send(tenant, "Hello");
        await().atMost(DEADLINE).until(() -> apns.receivedFor(token).size() == 1);
        await().atMost(DEADLINE).until(() -> eventsOf(receiver, id).size() >= 2);

        WebhookReceiver.Hook push = eventsOf(receiver, id).stream()
                .filter(h -> h.data().path("channel").asText().equals("push")).findFirst().orElseThrow();
        assertSigned(push);
        assertThat(push.type()).isEqualTo("delivery.sent");
        assertThat(push.json().path("id").asText()).startsWith("evt_");
        assertThat(Instant.parse(push.json().path("createdAt").asText())).isCloseTo(Instant.now(), org.assertj.core.api.Assertions.within(1, ChronoUnit.MINUTES));
        assertThat(push.data().path("userId").asText()).isEqualTo(tenant.userId());
        assertThat(push.data().path("installationId").asText()).isEqualTo(installation);
        assertThat(push.data().path("status").asText()).isEqualTo("sent");
        assertThat(push.data().has("reason")).isFalse();
        assertThat(push.body()).doesNotContain(token).doesNotContain(SECRET);
        assertThat(eventsOf(receiver, id)).anyMatch(h -> h.data().path("channel").asText().equals("inApp")
                && h.type().equals("delivery.sent"));

        assertThat(api.post("/v1/receipts", tenant.userToken(),
                Map.of("notificationId", id, "installationId", installation, "event", "received")).status()).isEqualTo(204);
        assertThat(api.post("/v1/receipts", tenant.userToken(),
                Map.of("notificationId", id, "installationId", installation, "event", "opened")).status()).isEqualTo(204);
        await().atMost(DEADLINE).until(() -> eventsOf(receiver, id).stream()
                .anyMatch(h -> h.type().equals("delivery.opened") && h.data().path("channel").asText().equals("push")));
        List<String> pushTypes = eventsOf(receiver, id).stream()
                .filter(h -> h.data().path("channel").asText().equals("push")).map(WebhookReceiver.Hook::type).toList();
        assertThat(pushTypes).containsExactly("delivery.sent", "delivery.delivered", "delivery.opened");
        eventsOf(receiver, id).forEach(WebhookTest::assertSigned);
    }

    @Test
    void aReceiverThatWasDownGetsEveryEventAfterwardsInOrder() {
        String installation = "iphone-down-" + tenant.userId();
        iphone(tenant, installation);
        receiver.mode(WebhookReceiver.Mode.FAIL);
        List<String> ids = new ArrayList<>();
        for (int i = 0; i < 5; i++) {
            String id = send(tenant, "While down " + i);
            ids.add(id);
        }
        await().atMost(DEADLINE).until(() -> receiver.refused() >= 2);
        for (String id : ids) {
            await().atMost(DEADLINE).until(() -> sql.count("SELECT count(*) FROM deliveries WHERE notification_id = ?"
                    + " AND channel = 'push' AND status = 'sent'", id) == 1);
            assertThat(api.post("/v1/receipts", tenant.userToken(),
                    Map.of("notificationId", id, "installationId", installation, "event", "opened")).status()).isEqualTo(204);
        }
        assertThat(receiver.accepted()).isEmpty();
        assertThat(sql.count("SELECT count(*) FROM webhook_pauses WHERE app_id = ?", tenant.app()))
                .as("the app is paused while its receiver fails").isEqualTo(1L);

        receiver.mode(WebhookReceiver.Mode.ACCEPT);
        await().atMost(Duration.ofSeconds(90)).until(() -> sql.count(
                "SELECT count(*) FROM webhook_events WHERE app_id = ?", tenant.app()) == 0);
        for (String id : ids) {
            List<String> push = eventsOf(receiver, id).stream()
                    .filter(h -> h.data().path("channel").asText().equals("push")).map(WebhookReceiver.Hook::type).toList();
            assertThat(push).as(id).containsExactly("delivery.sent", "delivery.opened");
            List<String> inbox = eventsOf(receiver, id).stream()
                    .filter(h -> h.data().path("channel").asText().equals("inApp")).map(WebhookReceiver.Hook::type).toList();
            assertThat(inbox).as(id).containsExactly("delivery.sent", "delivery.opened");
        }
        assertThat(sql.count("SELECT count(*) FROM webhook_pauses WHERE app_id = ?", tenant.app())).isZero();
    }

    @Test
    void aHangingReceiverSlowsNeitherDeliveryNorAnotherApp() {
        receiver.mode(WebhookReceiver.Mode.HOLD);
        String stuckToken = iphone(tenant, "iphone-stuck-" + tenant.userId());
        for (int i = 0; i < 40; i++) {
            send(tenant, "Into a hanging receiver " + i);
        }
        await().atMost(DEADLINE).until(() -> apns.receivedFor(stuckToken).size() == 40);

        Fixtures.Tenant other = fixtures.tenant();
        configureGateways(other.app());
        try (WebhookReceiver healthy = new WebhookReceiver()) {
            hook(other.app(), healthy);
            String token = iphone(other, "iphone-other-" + other.userId());
            String id = send(other, "Elsewhere");
            await().atMost(DEADLINE).until(() -> apns.receivedFor(token).size() == 1);
            await().atMost(Duration.ofSeconds(10)).until(() -> eventsOf(healthy, id).size() == 2);
        }
        assertThat(receiver.accepted()).isEmpty();
    }

    @Test
    void deadTokensAndCallsAreTold() {
        String installation = "iphone-dead-" + tenant.userId();
        String token = iphone(tenant, installation);
        apns.answer(token, MockApns.Answer.unregistered(Instant.now().plusSeconds(5)));
        String id = send(tenant, "To a dead token");
        await().atMost(DEADLINE).until(() -> !receiver.accepted("device.unregistered").isEmpty());
        JsonNode dead = receiver.accepted("device.unregistered").get(0).data();
        assertThat(dead.path("installationId").asText()).isEqualTo(installation);
        assertThat(dead.path("userId").asText()).isEqualTo(tenant.userId());
        assertThat(dead.path("app").asText()).isEqualTo(tenant.app());
        assertThat(dead.path("platform").asText()).isEqualTo("ios");
        assertThat(dead.path("token").asText()).isEqualTo("push");
        assertThat(dead.path("reason").asText()).isEqualTo("Unregistered");
        await().atMost(DEADLINE).until(() -> eventsOf(receiver, id).stream().anyMatch(h ->
                h.type().equals("delivery.failed") && h.data().path("reason").asText().equals("Unregistered")));

        String voip = apnsToken();
        Map<String, Object> phone = iosDevice(tenant.app(), apnsToken());
        phone.put("voipToken", voip);
        assertThat(api.put("/v1/devices/iphone-call-" + tenant.userId(), tenant.userToken(), phone).status()).isIn(200, 201);
        String callId = "hook-call-" + tenant.userId();
        Map<String, Object> call = Map.of("callId", callId, "callee", tenant.userId(),
                "caller", Map.of("id", "caller-1", "name", "Grace"), "ringSeconds", 30);
        assertThat(api.post("/v1/calls", tenant.key(), call).status()).isIn(200, 201);
        assertThat(api.delete("/v1/calls/" + callId + "?reason=declined", tenant.key()).status()).isEqualTo(200);
        await().atMost(DEADLINE).until(() -> receiver.accepted().stream().filter(h -> h.type().startsWith("call."))
                .count() == 2);
        List<WebhookReceiver.Hook> calls = receiver.accepted().stream().filter(h -> h.type().startsWith("call.")).toList();
        assertThat(calls).extracting(WebhookReceiver.Hook::type).containsExactly("call.routed", "call.ended");
        assertThat(calls.get(1).data().path("reason").asText()).isEqualTo("declined");
        calls.forEach(WebhookTest::assertSigned);
    }

    @Test
    void aCallEndedWhileStillRingingIsToldRoutedThenEnded() throws Exception {
        String voip = apnsToken();
        Map<String, Object> phone = iosDevice(tenant.app(), apnsToken());
        phone.put("voipToken", voip);
        assertThat(api.put("/v1/devices/iphone-race-" + tenant.userId(), tenant.userToken(), phone).status()).isIn(200, 201);
        String callId = "race-" + tenant.userId();
        Map<String, Object> call = Map.of("callId", callId, "callee", tenant.userId(),
                "caller", Map.of("id", "caller-1"), "ringSeconds", 30);
        // APNs holds the ring, so the caller hangs up before the ring's outcome is recorded
        MockApns.Gate held = apns.hold();
        java.util.concurrent.CompletableFuture<Api.Response> ringing =
                java.util.concurrent.CompletableFuture.supplyAsync(() -> api.post("/v1/calls", tenant.key(), call));
        await().atMost(DEADLINE).until(() -> held.waiting() >= 1);
        java.util.concurrent.CompletableFuture<Api.Response> ending = java.util.concurrent.CompletableFuture.supplyAsync(
                () -> api.delete("/v1/calls/" + callId + "?reason=cancelled", tenant.key()));
        await().atMost(DEADLINE).until(() -> sql.count("SELECT count(*) FROM calls WHERE app_id = ? AND call_id = ?"
                + " AND ended_at IS NOT NULL", tenant.app(), callId) == 1);
        held.open();
        assertThat(ringing.get(30, java.util.concurrent.TimeUnit.SECONDS).status()).isIn(200, 201);
        assertThat(ending.get(30, java.util.concurrent.TimeUnit.SECONDS).status()).isEqualTo(200);

        await().atMost(DEADLINE).until(() -> receiver.accepted().stream().filter(h -> h.type().startsWith("call.")).count() >= 2);
        await().during(Duration.ofSeconds(1)).atMost(Duration.ofSeconds(5)).until(() ->
                receiver.accepted().stream().filter(h -> h.type().startsWith("call.")).count() == 2);
        assertThat(receiver.accepted().stream().filter(h -> h.type().startsWith("call.")).map(WebhookReceiver.Hook::type))
                .containsExactly("call.routed", "call.ended");
    }

    @Test
    void anEventUndeliveredFor24HoursEndsFailedWithItsReason() {
        receiver.mode(WebhookReceiver.Mode.FAIL);
        iphone(tenant, "iphone-old-" + tenant.userId());
        String id = send(tenant, "Too late");
        await().atMost(DEADLINE).until(() -> sql.count("SELECT count(*) FROM webhook_events WHERE app_id = ?"
                + " AND data->>'notificationId' = ?", tenant.app(), id) >= 2);
        // as if the receiver had been failing since yesterday
        sql.update("UPDATE webhook_events SET created_at = created_at - interval '25 hours', next_attempt_at = now()"
                + " WHERE app_id = ?", tenant.app());
        sql.update("DELETE FROM webhook_pauses WHERE app_id = ?", tenant.app());
        await().atMost(DEADLINE).until(() -> sql.count("SELECT count(*) FROM webhook_events WHERE app_id = ?"
                + " AND state = 'pending'", tenant.app()) == 0);
        assertThat(sql.string("SELECT min(last_error) FROM webhook_events WHERE app_id = ? AND state = 'failed'",
                tenant.app())).isEqualTo("http_503");
    }
}
