package dev.herald.notifications;

import com.eatthepath.pushy.apns.server.RejectionReason;
import com.fasterxml.jackson.databind.JsonNode;
import dev.herald.support.Api;
import dev.herald.support.FakeFcm;
import dev.herald.support.Fixtures;
import dev.herald.support.GatewayTest;
import dev.herald.support.MockApns;
import dev.herald.support.Sql;
import io.micronaut.test.extensions.junit5.annotation.MicronautTest;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static dev.herald.support.Fixtures.androidDevice;
import static dev.herald.support.Fixtures.apnsToken;
import static dev.herald.support.Fixtures.fcmToken;
import static dev.herald.support.Fixtures.iosDevice;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;
import static org.awaitility.Awaitility.await;

/**
 * Notifications end to end: accepted over HTTP, routed, pushed to pushy's MockApnsServer (HTTP/2, TLS,
 * token authentication checked by the mock) and to a loopback FCM v1 endpoint with its OAuth token
 * endpoint, and accounted for at {@code GET /v1/notifications/{id}}.
 */
@MicronautTest(transactional = false)
class PushDeliveryTest extends GatewayTest {

    private static final Duration DEADLINE = Duration.ofSeconds(20);

    @jakarta.inject.Inject
    Sql sql;

    private JsonNode awaitStatus(String id, String status) {
        JsonNode[] last = new JsonNode[1];
        await().atMost(DEADLINE).untilAsserted(() -> {
            last[0] = api.get("/v1/notifications/" + id + "?limit=100", tenant.key()).json();
            assertThat(last[0].path("status").asText()).as(last[0].toString()).isEqualTo(status);
        });
        return last[0];
    }

    private static JsonNode delivery(JsonNode status, String installationId) {
        for (JsonNode d : status.path("deliveries").path("items")) {
            if (installationId.equals(d.path("installationId").asText(null))) {
                return d;
            }
        }
        throw new AssertionError("no delivery for " + installationId + " in " + status);
    }

    @Test
    void alertReachesApnsAndFcmWithTheDocumentedHeadersAndPayloads() {
        String iosToken = apnsToken();
        String androidToken = fcmToken();
        Map<String, Object> ios = iosDevice(tenant.app(), iosToken);
        ios.put("locale", "fr-FR");
        register("ios-" + iosToken.substring(0, 8), ios);
        register("android-" + iosToken.substring(0, 8), androidDevice(tenant.app(), androidToken));
        Map<String, Object> body = new LinkedHashMap<>();
        body.put("to", Map.of("users", List.of(tenant.userId())));
        body.put("title", Map.of("en", "Your order shipped", "fr", "Votre commande est partie"));
        body.put("body", Map.of("en", "Arrives Tuesday", "fr", "Arrive mardi"));
        body.put("priority", "high");
        body.put("badge", 3);
        body.put("sound", "chime.caf");
        body.put("collapseKey", "order-42");
        body.put("ttlSeconds", 3600);
        body.put("link", "myapp://orders/42");
        body.put("data", Map.of("orderId", "42"));
        Instant before = Instant.now();

        String id = sendNotification(body);
        JsonNode status = awaitStatus(id, "done");

        assertThat(status.path("counts").path("sent").asInt()).as("two pushes and the inbox item").isEqualTo(3);
        assertThat(status.path("counts").path("suppressed").asInt()).as("live and email are not built yet").isEqualTo(2);
        MockApns.Received push = apns.receivedFor(iosToken).get(0);
        assertThat(apns.receivedFor(iosToken)).hasSize(1);
        assertThat(push.header("apns-topic")).isEqualTo("com.example.herald");
        assertThat(push.header("apns-push-type")).isEqualTo("alert");
        assertThat(push.header("apns-priority")).isEqualTo("10");
        assertThat(push.header("apns-collapse-id")).isEqualTo("order-42");
        assertThat(push.header("apns-id")).isNotBlank();
        assertThat(Long.parseLong(push.header("apns-expiration")))
                .isCloseTo(before.plusSeconds(3600).getEpochSecond(), within(30L));
        JsonNode payload = Api.JSON.valueToTree(parse(push.payload()));
        assertThat(payload.at("/aps/alert/title").asText()).isEqualTo("Votre commande est partie");
        assertThat(payload.at("/aps/alert/body").asText()).isEqualTo("Arrive mardi");
        assertThat(payload.at("/aps/badge").asInt()).isEqualTo(3);
        assertThat(payload.at("/aps/sound").asText()).isEqualTo("chime.caf");
        assertThat(payload.path("orderId").asText()).isEqualTo("42");
        assertThat(payload.path("link").asText()).isEqualTo("myapp://orders/42");

        FakeFcm.Send sent = fcm.sends().stream()
                .filter(s -> androidToken.equals(s.message().path("token").asText())).findFirst().orElseThrow();
        JsonNode message = sent.message();
        assertThat(sent.projectId()).isEqualTo("herald-test");
        assertThat(message.at("/notification/title").asText()).isEqualTo("Your order shipped");
        assertThat(message.at("/notification/body").asText()).isEqualTo("Arrives Tuesday");
        assertThat(message.at("/android/priority").asText()).isEqualToIgnoringCase("high");
        assertThat(message.at("/android/collapse_key").asText()).isEqualTo("order-42");
        assertThat(message.at("/android/ttl").asText()).matches("3[56]\\d\\d(\\.\\d+)?s");
        assertThat(message.at("/data/orderId").asText()).isEqualTo("42");
        assertThat(message.at("/data/link").asText()).isEqualTo("myapp://orders/42");
    }

    @Test
    void outcomesAreCountedAtMetricsWithoutTokens() {
        String iosToken = apnsToken();
        String installation = register("metrics-" + iosToken.substring(0, 8), iosDevice(tenant.app(), iosToken));

        awaitStatus(sendNotification(Map.of("to", Map.of("devices", List.of(installation)), "title", "Counted")), "done");
        String metrics = api.get("/metrics", null).body();

        assertThat(metrics).containsPattern("herald_push_results_total\\{[^}]*app=\"" + tenant.app()
                + "\"[^}]*gateway=\"apns\"[^}]*outcome=\"accepted\"");
        assertThat(metrics).containsPattern("herald_deliveries_total\\{[^}]*app=\"" + tenant.app()
                + "\"[^}]*status=\"sent\"");
        assertThat(metrics).contains("herald_push_latency_seconds");
        assertThat(metrics).doesNotContain(iosToken);
    }

    @Test
    void silentPushIsBackgroundAtPriorityFive() {
        String iosToken = apnsToken();
        register("ios-" + iosToken.substring(0, 8), iosDevice(tenant.app(), iosToken));

        String id = sendNotification(Map.of("to", Map.of("devices", List.of("ios-" + iosToken.substring(0, 8))),
                "data", Map.of("sync", "inbox"), "priority", "high"));
        JsonNode status = awaitStatus(id, "done");

        assertThat(status.path("counts").path("sent").asInt()).isEqualTo(1);
        assertThat(status.path("recipients").asInt()).isEqualTo(1);
        MockApns.Received push = apns.receivedFor(iosToken).get(0);
        assertThat(push.header("apns-push-type")).isEqualTo("background");
        assertThat(push.header("apns-priority")).isEqualTo("5");
        JsonNode payload = Api.JSON.valueToTree(parse(push.payload()));
        assertThat(payload.at("/aps/content-available").asInt()).isEqualTo(1);
        assertThat(payload.at("/aps/alert").isMissingNode()).isTrue();
        assertThat(payload.path("sync").asText()).isEqualTo("inbox");
    }

    @Test
    void deadTokenIsClearedAndNeverUsedAgain() {
        String dead = apnsToken();
        String deadAndroid = fcmToken();
        String installation = register("dead-" + dead.substring(0, 8), iosDevice(tenant.app(), dead));
        String androidInstallation = register("dead-a-" + dead.substring(0, 8), androidDevice(tenant.app(), deadAndroid));
        apns.answer(dead, MockApns.Answer.unregistered(Instant.now().plusSeconds(5)));
        fcm.answer(deadAndroid, FakeFcm.Answer.unregistered());

        JsonNode first = awaitStatus(sendNotification(Map.of("to", Map.of("users", List.of(tenant.userId())), "title", "One")), "done");
        assertThat(delivery(first, installation).path("status").asText()).isEqualTo("failed");
        assertThat(delivery(first, installation).path("reason").asText()).isEqualTo("Unregistered");
        assertThat(delivery(first, androidInstallation).path("reason").asText()).isEqualTo("UNREGISTERED");
        await().atMost(DEADLINE).untilAsserted(() ->
                assertThat(sql.count("SELECT count(*) FROM devices WHERE installation_id IN (?, ?) AND push_token IS NULL",
                        installation, androidInstallation)).isEqualTo(2L));

        JsonNode second = awaitStatus(sendNotification(Map.of("to", Map.of("users", List.of(tenant.userId())), "title", "Two")), "done");
        assertThat(delivery(second, installation).path("status").asText()).isEqualTo("failed");
        assertThat(delivery(second, installation).path("reason").asText()).isEqualTo("no_token");
        assertThat(apns.receivedFor(dead)).hasSize(1);
        assertThat(fcm.sends().stream().filter(s -> deadAndroid.equals(s.message().path("token").asText()))).hasSize(1);
    }

    @Test
    void tokenRegisteredAgainAfterTheInvalidationTimeIsKept() {
        String token = apnsToken();
        String installation = register("again-" + token.substring(0, 8), iosDevice(tenant.app(), token));
        apns.answer(token, MockApns.Answer.unregistered(Instant.now().minus(1, ChronoUnit.HOURS)));

        JsonNode status = awaitStatus(sendNotification(Map.of("to", Map.of("devices", List.of(installation)), "title", "Hi")), "done");

        assertThat(delivery(status, installation).path("reason").asText()).isEqualTo("Unregistered");
        assertThat(sql.count("SELECT count(*) FROM devices WHERE installation_id = ? AND push_token = ?", installation, token))
                .as("registered after APNs invalidated it: still the device's token").isEqualTo(1L);
    }

    @Test
    void rejectionIsFinalAndNotRetried() {
        String token = apnsToken();
        String installation = register("bad-" + token.substring(0, 8), iosDevice(tenant.app(), token));
        apns.answer(token, MockApns.Answer.reject(RejectionReason.BAD_TOPIC));

        JsonNode status = awaitStatus(sendNotification(Map.of("to", Map.of("devices", List.of(installation)), "title", "Hi")), "done");

        JsonNode d = delivery(status, installation);
        assertThat(d.path("status").asText()).isEqualTo("failed");
        assertThat(d.path("reason").asText()).isEqualTo("BadTopic");
        assertThat(d.path("attempts").asInt()).isEqualTo(1);
        assertThat(apns.receivedFor(token)).hasSize(1);
    }

    @Test
    void throttledPushIsRetriedUntilAccepted() {
        String token = fcmToken();
        String installation = register("busy-" + apnsToken().substring(0, 8), androidDevice(tenant.app(), token));
        fcm.answer(token, FakeFcm.Answer.quotaExceeded("1"));

        String id = sendNotification(Map.of("to", Map.of("devices", List.of(installation)), "title", "Hi"));
        await().atMost(DEADLINE).until(() -> fcm.sends().stream().filter(s -> token.equals(s.message().path("token").asText())).count() >= 1);
        JsonNode queued = api.get("/v1/notifications/" + id, tenant.key()).json();
        assertThat(queued.path("status").asText()).isEqualTo("routing");
        fcm.answer(token, FakeFcm.Answer.ok());
        JsonNode status = awaitStatus(id, "done");

        JsonNode d = delivery(status, installation);
        assertThat(d.path("status").asText()).isEqualTo("sent");
        assertThat(d.path("attempts").asInt()).isGreaterThanOrEqualTo(2);
    }

    @Test
    void testKeyRunsEverythingButReachesNoGateway() {
        String token = apnsToken();
        String installation = register("sim-" + token.substring(0, 8), iosDevice(tenant.app(), token));
        String testKey = fixtures.key(tenant.app(), "test", "send");

        Api.Response accepted = api.post("/v1/notifications", testKey,
                Map.of("to", Map.of("devices", List.of(installation)), "title", "Hi"));
        String id = accepted.json().path("id").asText();
        JsonNode[] status = new JsonNode[1];
        await().atMost(DEADLINE).untilAsserted(() -> {
            status[0] = api.get("/v1/notifications/" + id, testKey).json();
            assertThat(status[0].path("status").asText()).isEqualTo("done");
        });

        assertThat(delivery(status[0], installation).path("status").asText()).isEqualTo("simulated");
        assertThat(apns.receivedFor(token)).isEmpty();
    }

    @Test
    void tagsReachEveryTaggedDeviceOnceAndNoOther() {
        String tag = "tag-" + apnsToken().substring(0, 8);
        String tagged1 = apnsToken();
        String tagged2 = fcmToken();
        String untagged = apnsToken();
        Map<String, Object> d1 = iosDevice(tenant.app(), tagged1);
        d1.put("tags", List.of(tag, "other"));
        Map<String, Object> d2 = androidDevice(tenant.app(), tagged2);
        d2.put("tags", List.of(tag));
        register("t1-" + tagged1.substring(0, 8), d1);
        register("t2-" + tagged1.substring(0, 8), d2);
        register("t3-" + untagged.substring(0, 8), iosDevice(tenant.app(), untagged));

        Api.Response accepted = api.post("/v1/notifications", tenant.key(), Map.of("to", Map.of("tags", List.of(tag)), "title", "Sale"));
        assertThat(accepted.json().path("recipients").asInt()).isEqualTo(2);
        JsonNode status = awaitStatus(accepted.json().path("id").asText(), "done");

        assertThat(status.path("counts").path("sent").asInt()).isEqualTo(2);
        assertThat(apns.receivedFor(tagged1)).hasSize(1);
        assertThat(fcm.sends().stream().filter(s -> tagged2.equals(s.message().path("token").asText()))).hasSize(1);
        assertThat(apns.receivedFor(untagged)).isEmpty();
    }

    @Test
    void userWithoutDevicesGetsASuppressedPush() {
        String id = sendNotification(Map.of("to", Map.of("users", List.of("nobody-" + apnsToken().substring(0, 8))), "title", "Hi",
                "channels", List.of("push")));
        JsonNode status = awaitStatus(id, "done");

        JsonNode only = status.path("deliveries").path("items").get(0);
        assertThat(status.path("deliveries").path("items")).hasSize(1);
        assertThat(only.path("channel").asText()).isEqualTo("push");
        assertThat(only.path("status").asText()).isEqualTo("suppressed");
        assertThat(only.path("reason").asText()).isEqualTo("no_device");
        assertThat(only.has("installationId")).isFalse();
    }

    @Test
    void gatewayDownForAWhileThenBackGetsThePushDelivered() {
        String token = apnsToken();
        String installation = register("outage-" + token.substring(0, 8), iosDevice(tenant.app(), token));
        apns.stop();
        String id;
        try {
            id = sendNotification(Map.of("to", Map.of("devices", List.of(installation)), "title", "During the outage"));
            await().atMost(DEADLINE).untilAsserted(() -> {
                JsonNode d = delivery(api.get("/v1/notifications/" + id, tenant.key()).json(), installation);
                assertThat(d.path("status").asText()).isEqualTo("queued");
                assertThat(d.path("attempts").asInt()).isGreaterThanOrEqualTo(1);
                assertThat(d.path("reason").asText()).isNotBlank();
            });
        } finally {
            apns.start();
        }
        JsonNode status = awaitStatus(id, "done");

        assertThat(delivery(status, installation).path("status").asText()).isEqualTo("sent");
        assertThat(apns.receivedFor(token)).hasSize(1);
    }

    @Test
    void shortTtlDuringAnOutageEndsExpired() {
        String token = fcmToken();
        String installation = register("ttl-" + apnsToken().substring(0, 8), androidDevice(tenant.app(), token));
        fcm.answer(token, FakeFcm.Answer.unavailable(null));

        JsonNode status = awaitStatus(sendNotification(Map.of("to", Map.of("devices", List.of(installation)), "title", "Soon stale",
                "ttlSeconds", 2)), "done");

        JsonNode d = delivery(status, installation);
        assertThat(d.path("status").asText()).isEqualTo("expired");
        assertThat(d.path("reason").asText()).isEqualTo("UNAVAILABLE");
    }

    @Test
    void ttlZeroIsSentOnceNowOrNever() {
        String token = apnsToken();
        String installation = register("now-" + token.substring(0, 8), iosDevice(tenant.app(), token));

        JsonNode status = awaitStatus(sendNotification(Map.of("to", Map.of("devices", List.of(installation)), "title", "Now or never",
                "ttlSeconds", 0)), "done");

        assertThat(delivery(status, installation).path("status").asText()).isEqualTo("sent");
        assertThat(apns.receivedFor(token)).hasSize(1);
    }

    @Test
    void scheduledNotificationWaitsForItsTime() {
        String token = apnsToken();
        String installation = register("later-" + token.substring(0, 8), iosDevice(tenant.app(), token));
        Instant sendAt = Instant.now().plusSeconds(2);

        Api.Response accepted = api.post("/v1/notifications", tenant.key(), Map.of("to", Map.of("devices", List.of(installation)),
                "title", "Later", "sendAt", sendAt.toString()));
        assertThat(accepted.json().path("status").asText()).isEqualTo("scheduled");
        assertThat(apns.receivedFor(token)).isEmpty();
        awaitStatus(accepted.json().path("id").asText(), "done");

        assertThat(apns.receivedFor(token)).hasSize(1);
        assertThat(Instant.now()).isAfterOrEqualTo(sendAt);
    }

    @Test
    void appWithoutApnsCredentialsSuppressesIosPushes() {
        String token = apnsToken();
        String installation = register("nocreds-" + token.substring(0, 8), iosDevice(tenant.app(), token));
        api.patch("/v1/apps/" + tenant.app(), Fixtures.ADMIN_KEY, java.util.Collections.singletonMap("apns", null));

        JsonNode status = awaitStatus(sendNotification(Map.of("to", Map.of("devices", List.of(installation)), "title", "Hi")), "done");

        JsonNode d = delivery(status, installation);
        assertThat(d.path("status").asText()).isEqualTo("suppressed");
        assertThat(d.path("reason").asText()).isEqualTo("not_configured");
        assertThat(apns.receivedFor(token)).isEmpty();
    }

    private static Map<?, ?> parse(String json) {
        try {
            return Api.JSON.readValue(json, Map.class);
        } catch (Exception e) {
            throw new AssertionError(json, e);
        }
    }
}
