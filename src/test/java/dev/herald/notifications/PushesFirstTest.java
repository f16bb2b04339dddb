package dev.herald.notifications;

import com.fasterxml.jackson.databind.JsonNode;
import dev.herald.support.Api;
import dev.herald.support.GatewayTest;
import dev.herald.support.MockApns;
import dev.herald.support.Sql;
import io.micronaut.test.extensions.junit5.annotation.MicronautTest;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;

import static dev.herald.support.Fixtures.androidDevice;
import static dev.herald.support.Fixtures.apnsToken;
import static dev.herald.support.Fixtures.fcmToken;
import static dev.herald.support.Fixtures.iosDevice;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/**
 * Device sends routed while accepting go pushes first: the accepting transaction stores the
 * notification and a job claimed by the node, the pushes go out once it commits, and each delivery is
 * written once, with its outcome. The node holds at most 500 pushes here (the least it may).
 */
@MicronautTest(transactional = false)
class PushesFirstTest extends GatewayTest {

    private static final Duration DEADLINE = Duration.ofSeconds(20);

    @jakarta.inject.Inject
    Sql sql;

    @Override
    protected Map<String, String> moreProperties() {
        // and the second writer of accepted notifications takes a batch from 4 waiting (32 unless set)
        return Map.of("herald.delivery.in-flight", "500", "herald.notifications.help-from", "4");
    }

    @Test
    void aDeviceSendIsPushedBeforeItsDeliveriesAreWrittenThenWrittenWithTheirOutcomes() {
        String prefix = "first-" + apnsToken().substring(0, 8);
        String iosToken = apnsToken();
        String phone = register(prefix + "-ios", iosDevice(tenant.app(), iosToken));
        String androidToken = fcmToken();
        String tablet = register(prefix + "-android", androidDevice(tenant.app(), androidToken));
        String old = register(prefix + "-old", iosDevice(tenant.app(), apnsToken()));
        assertThat(sql.update("UPDATE devices SET push_token = NULL WHERE installation_id = ?", old)).isEqualTo(1);
        MockApns.Gate held = apns.hold();
        String id;
        try {
            id = sendNotification(Map.of("to", Map.of("devices", List.of(phone, tablet, old)), "title", "First"));
            await().atMost(DEADLINE).until(() -> held.waiting() >= 1 && fcmSendsTo(androidToken).size() == 1);

            // the Android push went out and the iPhone's is at APNs: nothing is written until both answered
            JsonNode inFlight = api.get("/v1/notifications/" + id, tenant.key()).json();
            assertThat(inFlight.path("status").asText()).isEqualTo("routing");
            assertThat(inFlight.path("recipients").asInt()).isEqualTo(3);
            assertThat(inFlight.path("deliveries").path("items")).as(inFlight.toString()).isEmpty();
            // the promise that they get sent: a job this node holds until the pushes' lease ends
            assertThat(sql.count("SELECT count(*) FROM jobs WHERE notification_id = ? AND attempts = 1"
                    + " AND run_at > now() + interval '30 seconds'", id)).isEqualTo(1);
            Api.Response early = api.post("/v1/receipts", tenant.userToken(),
                    Map.of("notificationId", id, "installationId", tablet, "event", "received"));
            assertThat(early.status()).as(early.toString()).isEqualTo(503);
            assertThat(early.headers().firstValue("Retry-After")).contains("1");
        } finally {
            held.open();
        }

        JsonNode done = awaitDone(id);
        Map<String, JsonNode> deliveries = byInstallation(done);
        assertThat(deliveries).containsOnlyKeys(phone, tablet, old);
        assertThat(deliveries.get(phone).path("status").asText()).isEqualTo("sent");
        assertThat(deliveries.get(phone).path("attempts").asInt()).isEqualTo(1);
        assertThat(deliveries.get(tablet).path("status").asText()).isEqualTo("sent");
        assertThat(deliveries.get(old).path("status").asText()).isEqualTo("failed");
        assertThat(deliveries.get(old).path("reason").asText()).isEqualTo("no_token");
        assertThat(done.path("counts").path("sent").asInt()).isEqualTo(2);
        assertThat(sql.count("SELECT count(*) FROM jobs WHERE notification_id = ?", id)).isZero();
        assertThat(apns.receivedFor(iosToken)).hasSize(1);
        assertThat(fcmSendsTo(androidToken).size()).isEqualTo(1);
        // the receipt asked again once written counts
        assertThat(api.post("/v1/receipts", tenant.userToken(),
                Map.of("notificationId", id, "installationId", tablet, "event", "received")).status()).isEqualTo(204);
    }

    @Test
    void aBurstOfDeviceSendsIsAcceptedPushedOnceEachAndWrittenOnceEach() throws Exception {
        String prefix = "burst-" + apnsToken().substring(0, 8) + "-";
        List<String> tokens = new ArrayList<>();
        for (int i = 0; i < 20; i++) {
            String token = apnsToken();
            register(prefix + i, iosDevice(tenant.app(), token));
            tokens.add(token);
        }
        // 400 sends from 40 senders at once: requests wait behind a commit, so both writers take batches
        java.util.concurrent.ExecutorService senders = java.util.concurrent.Executors.newFixedThreadPool(40);
        List<java.util.concurrent.Future<String>> sent = new ArrayList<>();
        for (int n = 0; n < 400; n++) {
            String installation = prefix + (n % 20);
            int number = n;
            sent.add(senders.submit(() -> sendNotification(Map.of("to", Map.of("devices", List.of(installation)),
                    "title", "Burst " + number))));
        }
        List<String> ids = new ArrayList<>();
        for (java.util.concurrent.Future<String> f : sent) {
            ids.add(f.get(30, java.util.concurrent.TimeUnit.SECONDS));
        }
        senders.shutdown();

        await().atMost(DEADLINE).until(() -> sql.count("SELECT count(*) FROM deliveries WHERE notification_id = ANY (?::text[])"
                + " AND status = 'sent'", "{" + String.join(",", ids) + "}") == 400);
        assertThat(sql.count("SELECT count(*) FROM deliveries WHERE notification_id = ANY (?::text[])",
                "{" + String.join(",", ids) + "}")).as("one delivery each").isEqualTo(400);
        assertThat(sql.count("SELECT count(*) FROM jobs WHERE notification_id = ANY (?::text[])",
                "{" + String.join(",", ids) + "}")).isZero();
        for (String token : tokens) {
            assertThat(apns.receivedFor(token)).as(token).hasSize(20);
        }
        List<MockApns.Received> ours = apns.received().stream().filter(r -> tokens.contains(r.token())).toList();
        assertThat(ours.stream().map(r -> r.header("apns-id")).distinct().count()).as("no push twice").isEqualTo(400);
    }

    @Test
    void aDeviceSendTakenOverWhenItsLeaseEndedIsWrittenOnceByWhoeverTookIt() {
        String token = apnsToken();
        String phone = register("taken-" + token.substring(0, 8), iosDevice(tenant.app(), token));
        MockApns.Gate held = apns.hold();
        String id;
        try {
            id = sendNotification(Map.of("to", Map.of("devices", List.of(phone)), "title", "Taken over"));
            await().atMost(DEADLINE).until(() -> held.waiting() >= 1);
            // the push hangs at APNs until its job's lease ends, as it would on a node that died: the job
            // is due, a router claims it and sends the device again (at least once, the same apns-id)
            assertThat(sql.update("UPDATE jobs SET run_at = now() WHERE notification_id = ?", id)).isEqualTo(1);
            await().atMost(DEADLINE).until(() -> held.waiting() >= 2);
        } finally {
            held.open();
        }

        JsonNode done = awaitDone(id);

        // the first sender's claim is gone: only the router's chunk writes the delivery
        assertThat(done.path("counts").path("sent").asInt()).isEqualTo(1);
        assertThat(byInstallation(done).get(phone).path("status").asText()).isEqualTo("sent");
        await().atMost(DEADLINE).untilAsserted(() -> assertThat(apns.receivedFor(token)).hasSize(2));
        assertThat(apns.receivedFor(token).stream().map(r -> r.header("apns-id")).distinct()).hasSize(1);
        assertThat(sql.count("SELECT count(*) FROM jobs WHERE notification_id = ?", id)).isZero();
        assertThat(sql.count("SELECT count(*) FROM deliveries WHERE notification_id = ?", id)).isEqualTo(1);
    }

    @Test
    void aDeadTokenOfADeviceSendIsClearedAndNeverUsedAgain() {
        String token = apnsToken();
        String phone = register("dead-" + token.substring(0, 8), iosDevice(tenant.app(), token));
        // APNs says it died after it was registered: compare-and-clear clears it
        apns.answer(token, MockApns.Answer.unregistered(Instant.now().plusSeconds(5)));

        JsonNode done = awaitDone(sendNotification(Map.of("to", Map.of("devices", List.of(phone)), "title", "Gone")));

        JsonNode d = byInstallation(done).get(phone);
        assertThat(d.path("status").asText()).isEqualTo("failed");
        assertThat(d.path("reason").asText()).isEqualTo("Unregistered");
        await().atMost(DEADLINE).until(() -> sql.string("SELECT push_token FROM devices WHERE installation_id = ?",
                phone) == null);
        JsonNode again = awaitDone(sendNotification(Map.of("to", Map.of("devices", List.of(phone)), "title", "Again")));
        assertThat(byInstallation(again).get(phone).path("reason").asText()).isEqualTo("no_token");
        assertThat(apns.receivedFor(token)).hasSize(1);
    }

    @Test
    void aDeviceSendFindingNoRoomAmongThePushesInFlightIsQueuedAndSentOnce() {
        String prefix = "full-" + apnsToken().substring(0, 8) + "-";
        // 500 iPhones of the tenant's user, each with a token of its own
        assertThat(sql.update("""
                INSERT INTO devices (installation_id, app_id, user_id, platform, push_token, push_token_updated_at,
                                     created_at, updated_at, last_seen_at)
                SELECT ? || lpad(g::text, 3, '0'), ?, ?, 'ios', md5(? || g) || md5(g::text || ?), now(), now(), now(), now()
                FROM generate_series(0, 499) g""", prefix, tenant.app(), tenant.userId(), prefix, prefix)).isEqualTo(500);
        List<String> installations = new ArrayList<>();
        for (int i = 0; i < 500; i++) {
            installations.add(prefix + String.format("%03d", i));
        }
        String lateToken = apnsToken();
        String late = register(prefix + "late", iosDevice(tenant.app(), lateToken));
        MockApns.Gate held = apns.hold();
        List<String> ids = new ArrayList<>();
        String lateId;
        try {
            for (int n = 0; n < 5; n++) {
                ids.add(sendNotification(Map.of("to", Map.of("devices", installations.subList(n * 100, n * 100 + 100)),
                        "title", "Batch " + n)));
            }
            await().atMost(DEADLINE).until(() -> Api.metric(api.get("/metrics", null).body(), "herald_push_in_flight")
                    .orElse(0) >= 500);
            String lateSend = sendNotification(Map.of("to", Map.of("devices", List.of(late)), "title", "Late"));
            lateId = lateSend;

            // no room: queued in PostgreSQL, untried, for whichever node has room
            await().atMost(DEADLINE).untilAsserted(() -> {
                JsonNode waiting = api.get("/v1/notifications/" + lateSend, tenant.key()).json();
                JsonNode queued = byInstallation(waiting).get(late);
                assertThat(queued).as(waiting.toString()).isNotNull();
                assertThat(queued.path("status").asText()).isEqualTo("queued");
                assertThat(queued.path("attempts").asInt()).isZero();
            });
            assertThat(sql.count("SELECT count(*) FROM jobs WHERE notification_id = ?", lateId)).isZero();
        } finally {
            held.open();
        }

        for (String id : ids) {
            assertThat(awaitDone(id).path("counts").path("sent").asInt()).isEqualTo(100);
        }
        JsonNode lateDone = awaitDone(lateId);
        assertThat(byInstallation(lateDone).get(late).path("status").asText()).isEqualTo("sent");
        assertThat(byInstallation(lateDone).get(late).path("attempts").asInt()).isEqualTo(1);
        assertThat(apns.receivedFor(lateToken)).hasSize(1);
        Map<String, Long> pushesPerToken = apns.received().stream()
                .collect(Collectors.groupingBy(MockApns.Received::token, Collectors.counting()));
        List<String> tokens = new ArrayList<>();
        for (String installation : installations) {
            tokens.add(sql.string("SELECT push_token FROM devices WHERE installation_id = ?", installation));
        }
        assertThat(tokens).allSatisfy(t -> assertThat(pushesPerToken.get(t)).as(t).isEqualTo(1L));
    }
}
