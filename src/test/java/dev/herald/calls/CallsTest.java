package dev.herald.calls;

import com.fasterxml.jackson.databind.JsonNode;
import dev.herald.support.Api;
import dev.herald.support.FakeFcm;
import dev.herald.support.Fixtures;
import dev.herald.support.GatewayTest;
import dev.herald.support.MockApns;
import dev.herald.support.Sql;
import io.micronaut.test.extensions.junit5.annotation.MicronautTest;
import jakarta.inject.Inject;
import org.junit.jupiter.api.Test;

import java.sql.Connection;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import static dev.herald.support.Fixtures.androidDevice;
import static dev.herald.support.Fixtures.apnsToken;
import static dev.herald.support.Fixtures.fcmToken;
import static dev.herald.support.Fixtures.iosDevice;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;
import static org.awaitility.Awaitility.await;

/**
 * {@code /v1/calls} end to end: VoIP pushes to pushy's MockApnsServer (TLS, token auth checked by the
 * mock) and FCM data messages to a loopback FCM v1 endpoint, asserted request by request; the cancel,
 * the duplicate-call rule, the missed call, and the routes that say why nothing rang.
 */
@MicronautTest(transactional = false)
class CallsTest extends GatewayTest {

    private static final Duration DEADLINE = Duration.ofSeconds(20);

    @Inject
    Sql sql;

    @Inject
    CallService calls;

    @Inject
    CallDirectory directory;

    @Inject
    javax.sql.DataSource dataSource;

    @Inject
    dev.herald.api.JsonBodies bodies;

    @Override
    protected Map<String, String> moreProperties() {
        return Map.of("herald.calls.deadline", "2s", "herald.webhook-allow-private", "true");
    }

    /** An iPhone with both tokens; answers the VoIP token. */
    private String iphone(String installationId) {
        String voip = apnsToken();
        Map<String, Object> device = iosDevice(tenant.app(), apnsToken());
        device.put("voipToken", voip);
        register(installationId, device);
        return voip;
    }

    private static Map<String, Object> call(String callId, String callee, int ringSeconds) {
        Map<String, Object> body = new LinkedHashMap<>();
        body.put("callId", callId);
        body.put("callee", callee);
        body.put("caller", Map.of("id", "caller-7", "name", "Ada Lovelace"));
        body.put("video", true);
        body.put("ringSeconds", ringSeconds);
        return body;
    }

    private JsonNode ring(Map<String, Object> body) {
        Api.Response r = api.post("/v1/calls", tenant.key(), body);
        assertThat(r.status()).as(r.toString()).isEqualTo(200);
        return r.json();
    }

    private static JsonNode route(JsonNode answer, String installationId) {
        for (JsonNode r : answer.path("routes")) {
            if (installationId.equals(r.path("installationId").asText(null))) {
                return r;
            }
        }
        throw new AssertionError("no route for " + installationId + " in " + answer);
    }

    private static JsonNode json(String payload) {
        try {
            return Api.JSON.readTree(payload);
        } catch (Exception e) {
            throw new AssertionError(payload, e);
        }
    }

    @Test
    void incomingCallRingsEveryDeviceWithTheDocumentedHeadersAndPayloads() {
        String voip = iphone("iphone-" + tenant.userId());
        String android = fcmToken();
        register("pixel-" + tenant.userId(), androidDevice(tenant.app(), android));
        String callId = "call-" + tenant.userId();
        Instant before = Instant.now();

        JsonNode answer = ring(call(callId, tenant.userId(), 20));

        assertThat(answer.path("callId").asText()).isEqualTo(callId);
        assertThat(answer.path("status").asText()).isEqualTo("ringing");
        assertThat(answer.path("routes")).hasSize(2);
        JsonNode iosRoute = route(answer, "iphone-" + tenant.userId());
        assertThat(iosRoute.path("channel").asText()).isEqualTo("voip");
        assertThat(iosRoute.path("status").asText()).isEqualTo("sent");
        JsonNode androidRoute = route(answer, "pixel-" + tenant.userId());
        assertThat(androidRoute.path("channel").asText()).isEqualTo("push");
        assertThat(androidRoute.path("status").asText()).isEqualTo("sent");

        // answered once every gateway acknowledged: both pushes are already there
        List<MockApns.Received> voipPushes = apns.receivedFor(voip);
        assertThat(voipPushes).hasSize(1);
        MockApns.Received push = voipPushes.get(0);
        assertThat(push.header("apns-topic")).isEqualTo(BUNDLE + ".voip");
        assertThat(push.header("apns-push-type")).isEqualTo("voip");
        assertThat(push.header("apns-priority")).isEqualTo("10");
        assertThat(push.header("apns-collapse-id")).isEqualTo(callId);
        assertThat(Long.parseLong(push.header("apns-expiration"))).isCloseTo(before.plusSeconds(20).getEpochSecond(), within(2L));
        JsonNode payload = json(push.payload());
        assertThat(payload.path("aps").isObject()).isTrue();
        assertThat(payload.path("aps").size()).as("PushKit: nothing for iOS to show by itself").isZero();
        assertThat(payload.path("type").asText()).isEqualTo("call.incoming");
        assertThat(payload.path("callId").asText()).isEqualTo(callId);
        assertThat(payload.path("callerId").asText()).isEqualTo("caller-7");
        assertThat(payload.path("callerName").asText()).isEqualTo("Ada Lovelace");
        assertThat(payload.path("video").asText()).isEqualTo("true");

        List<FakeFcm.Send> sends = fcmSendsTo(android);
        assertThat(sends).hasSize(1);
        JsonNode message = sends.get(0).message();
        assertThat(message.has("notification")).as("a data-only message: the app rings itself").isFalse();
        assertThat(message.at("/android/priority").asText()).isEqualToIgnoringCase("high");
        assertThat(message.at("/android/ttl").asText()).isEqualTo("20s");
        assertThat(message.at("/android/collapse_key").asText()).isEqualTo(callId);
        assertThat(message.at("/data/type").asText()).isEqualTo("call.incoming");
        assertThat(message.at("/data/callId").asText()).isEqualTo(callId);
        assertThat(message.at("/data/callerId").asText()).isEqualTo("caller-7");
        assertThat(message.at("/data/callerName").asText()).isEqualTo("Ada Lovelace");
        assertThat(message.at("/data/video").asText()).isEqualTo("true");

        String metrics = api.get("/metrics", null).body();
        assertThat(metrics).contains("herald_calls_routes_total").contains("herald_calls_handover_seconds");
        for (String stage : List.of("picked", "read", "handed", "stored", "acknowledged")) {
            assertThat(metrics.lines()
                    .filter(l -> l.startsWith("herald_calls_stage_seconds_count{") && l.contains("stage=\"" + stage + "\""))
                    .mapToDouble(l -> Double.parseDouble(l.substring(l.lastIndexOf(' ') + 1))))
                    .as("calls timed at stage " + stage).singleElement().satisfies(n -> assertThat(n).isGreaterThanOrEqualTo(1));
        }
        assertThat(metrics).doesNotContain(voip).doesNotContain(android);
    }

    @Test
    void endingACallSendsCallEndedOnceToEveryDeviceThatRang() {
        String voip = iphone("iphone-end-" + tenant.userId());
        String android = fcmToken();
        register("pixel-end-" + tenant.userId(), androidDevice(tenant.app(), android));
        String callId = "end-" + tenant.userId();
        ring(call(callId, tenant.userId(), 60));

        Api.Response ended = api.delete("/v1/calls/" + callId + "?reason=answered", tenant.key());

        assertThat(ended.status()).as(ended.toString()).isEqualTo(200);
        assertThat(ended.json().path("status").asText()).isEqualTo("answered");
        assertThat(ended.json().path("endedAt").asText()).isNotBlank();
        assertThat(ended.json().path("routes")).allSatisfy(r -> assertThat(r.path("status").asText()).isEqualTo("sent"));
        assertThat(apns.receivedFor(voip)).hasSize(2);
        MockApns.Received end = apns.receivedFor(voip).get(1);
        assertThat(end.header("apns-push-type")).isEqualTo("voip");
        assertThat(end.header("apns-topic")).isEqualTo(BUNDLE + ".voip");
        assertThat(end.header("apns-collapse-id")).isEqualTo(callId);
        JsonNode payload = json(end.payload());
        assertThat(payload.path("type").asText()).isEqualTo("call.ended");
        assertThat(payload.path("callId").asText()).isEqualTo(callId);
        assertThat(payload.path("reason").asText()).isEqualTo("answered");
        List<FakeFcm.Send> sends = fcmSendsTo(android);
        assertThat(sends).hasSize(2);
        assertThat(sends.get(1).message().at("/data/type").asText()).isEqualTo("call.ended");
        assertThat(sends.get(1).message().at("/data/reason").asText()).isEqualTo("answered");
        assertThat(sends.get(1).message().at("/android/priority").asText()).isEqualToIgnoringCase("high");

        Api.Response again = api.delete("/v1/calls/" + callId + "?reason=cancelled", tenant.key());
        assertThat(again.status()).as(again.toString()).isEqualTo(200);
        assertThat(again.json().path("status").asText()).as("the first end stands").isEqualTo("answered");
        assertThat(apns.receivedFor(voip)).as("nothing sent twice").hasSize(2);
        assertThat(fcmSendsTo(android)).hasSize(2);

        JsonNode shown = api.get("/v1/calls/" + callId, tenant.key()).json();
        assertThat(shown.path("status").asText()).isEqualTo("answered");
        assertThat(shown.has("missedNotificationId")).as("an answered call is not missed").isFalse();
    }

    @Test
    void sameCallIdWhileRingingDoesNotRingTwice() throws Exception {
        String voip = iphone("iphone-dup-" + tenant.userId());
        String callId = "dup-" + tenant.userId();

        JsonNode first = ring(call(callId, tenant.userId(), 60));
        JsonNode second = ring(call(callId, tenant.userId(), 60));

        assertThat(second.path("routes")).isEqualTo(first.path("routes"));
        assertThat(second.path("createdAt")).isEqualTo(first.path("createdAt"));
        assertThat(apns.receivedFor(voip)).hasSize(1);

        // and when both arrive at once, still one ring
        String racing = "race-" + tenant.userId();
        ExecutorService pool = Executors.newFixedThreadPool(4);
        try {
            List<Future<Api.Response>> answers = new ArrayList<>();
            for (int i = 0; i < 4; i++) {
                answers.add(pool.submit((Callable<Api.Response>) () -> api.post("/v1/calls", tenant.key(),
                        call(racing, tenant.userId(), 60))));
            }
            for (Future<Api.Response> answer : answers) {
                assertThat(answer.get().status()).as(answer.get().toString()).isEqualTo(200);
            }
        } finally {
            pool.shutdown();
        }
        assertThat(apns.receivedFor(voip).stream().filter(p -> racing.equals(p.header("apns-collapse-id")))).hasSize(1);
    }

    /**
     * A connection of the test's own holding {@code call_routes} locked until it rolls back: reads go on,
     * inserts of routes wait, so a call is decided new but its routes cannot be stored yet.
     */
    private Connection routesLocked() throws SQLException {
        Connection lock = sql.connect();
        lock.setAutoCommit(false);
        try (Statement s = lock.createStatement()) {
            s.execute("LOCK TABLE call_routes IN EXCLUSIVE MODE");
        }
        return lock;
    }

    @Test
    void aNewCallRingsWhileItsRoutesAreStillBeingStored() throws Exception {
        String voip = iphone("iphone-early-" + tenant.userId());
        String callId = "early-" + tenant.userId();
        CompletableFuture<Api.Response> answer;
        CompletableFuture<Api.Response> declined;
        try (Connection lock = routesLocked()) {
            answer = CompletableFuture.supplyAsync(() -> api.post("/v1/calls", tenant.key(),
                    call(callId, tenant.userId(), 60)));
            await().atMost(DEADLINE).until(() -> apns.receivedFor(voip).stream()
                    .anyMatch(p -> callId.equals(p.header("apns-collapse-id"))));
            assertThat(answer).as("answered only once the call is stored").isNotDone();
            // the callee declines at once: the decline waits for the call to be stored instead of a 404
            declined = CompletableFuture.supplyAsync(() -> api.delete("/v1/calls/" + callId + "?reason=declined",
                    tenant.key()));
            await().atMost(DEADLINE).until(() -> calls.waitingForPost(tenant.app(), callId) == 1);
            lock.rollback();
        }
        Api.Response rung = answer.get(DEADLINE.toSeconds(), TimeUnit.SECONDS);
        assertThat(rung.status()).as(rung.toString()).isEqualTo(200);
        assertThat(route(rung.json(), "iphone-early-" + tenant.userId()).path("status").asText()).isEqualTo("sent");
        Api.Response decline = declined.get(DEADLINE.toSeconds(), TimeUnit.SECONDS);
        assertThat(decline.status()).as(decline.toString()).isEqualTo(200);
        assertThat(decline.json().path("status").asText()).isEqualTo("declined");
        await().atMost(DEADLINE).until(() -> apns.receivedFor(voip).size() == 2);
        assertThat(json(apns.receivedFor(voip).get(1).payload()).path("type").asText()).isEqualTo("call.ended");
    }

    @Test
    void aCallThatRangButCouldNotBeStoredIsEndedOnTheDevices() throws Exception {
        String voip = iphone("iphone-lost-" + tenant.userId());
        String callId = "lost-" + tenant.userId();
        CompletableFuture<Api.Response> answer;
        try (Connection lock = routesLocked()) {
            answer = CompletableFuture.supplyAsync(() -> api.post("/v1/calls", tenant.key(),
                    call(callId, tenant.userId(), 60)));
            await().atMost(DEADLINE).until(() -> !apns.receivedFor(voip).isEmpty());
            // PostgreSQL drops the connection storing the call (a failover, say) after the phone rang
            await().atMost(DEADLINE).until(() -> sql.count("SELECT count(pg_terminate_backend(pid))"
                    + " FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'INSERT INTO call_routes%'") == 1);
            lock.rollback();
        }
        Api.Response failed = answer.get(DEADLINE.toSeconds(), TimeUnit.SECONDS);
        assertThat(failed.status()).as(failed.toString()).isGreaterThanOrEqualTo(500);
        assertThat(failed.contentType()).startsWith("application/problem+json");
        // what rang is told the call ended, so it does not ring on for a call nobody can end
        await().atMost(DEADLINE).until(() -> apns.receivedFor(voip).size() == 2);
        JsonNode ended = json(apns.receivedFor(voip).get(1).payload());
        assertThat(ended.path("type").asText()).isEqualTo("call.ended");
        assertThat(ended.path("reason").asText()).isEqualTo("cancelled");
        assertThat(api.get("/v1/calls/" + callId, tenant.key()).status()).isEqualTo(404);
    }

    @Test
    void unansweredCallBecomesOneMissedCall() {
        String voip = iphone("iphone-missed-" + tenant.userId());
        String alertToken = sql.string("SELECT push_token FROM devices WHERE installation_id = ?", "iphone-missed-" + tenant.userId());
        String callId = "missed-" + tenant.userId();

        ring(call(callId, tenant.userId(), 5));

        JsonNode[] shown = new JsonNode[1];
        await().atMost(DEADLINE).untilAsserted(() -> {
            shown[0] = api.get("/v1/calls/" + callId, tenant.key()).json();
            assertThat(shown[0].path("status").asText()).isEqualTo("timeout");
            assertThat(apns.receivedFor(voip)).hasSize(2);
        });
        JsonNode ended = json(apns.receivedFor(voip).get(1).payload());
        assertThat(ended.path("type").asText()).isEqualTo("call.ended");
        assertThat(ended.path("reason").asText()).isEqualTo("timeout");
        assertThat(Duration.between(Instant.parse(shown[0].path("ringUntil").asText()),
                Instant.parse(shown[0].path("endedAt").asText()))).isBetween(Duration.ZERO, Duration.ofSeconds(3));

        String missed = shown[0].path("missedNotificationId").asText();
        assertThat(missed).startsWith("ntf_");
        assertThat(sql.count("SELECT count(*) FROM notifications WHERE app_id = ? AND request->>'category' = 'call.missed' "
                + "AND request->'data'->>'callId' = ?", tenant.app(), callId)).isEqualTo(1L);
        // routed like any notification: an alert on the callee's device
        await().atMost(DEADLINE).untilAsserted(() -> assertThat(apns.receivedFor(alertToken)).hasSize(1));
        MockApns.Received alert = apns.receivedFor(alertToken).get(0);
        assertThat(alert.header("apns-push-type")).isEqualTo("alert");
        JsonNode payload = json(alert.payload());
        assertThat(payload.at("/aps/alert/title").asText()).isEqualTo("Missed video call");
        assertThat(payload.at("/aps/alert/body").asText()).isEqualTo("Ada Lovelace");
        assertThat(payload.path("type").asText()).isEqualTo("call.missed");
        assertThat(payload.path("callId").asText()).isEqualTo(callId);
        JsonNode notification = api.get("/v1/notifications/" + missed, tenant.key()).json();
        assertThat(notification.path("recipients").asInt()).isEqualTo(1);
        // and an item in the callee's inbox
        await().atMost(DEADLINE).untilAsserted(() -> {
            JsonNode inbox = api.get("/v1/inbox", tenant.userToken()).json();
            assertThat(inbox.path("items")).hasSize(1);
            assertThat(inbox.path("items").get(0).path("category").asText()).isEqualTo("call.missed");
            assertThat(inbox.path("items").get(0).path("notificationId").asText()).isEqualTo(missed);
            assertThat(inbox.path("items").get(0).path("body").asText()).isEqualTo("Ada Lovelace");
            assertThat(inbox.path("items").get(0).path("data").path("callId").asText()).isEqualTo(callId);
        });

        Api.Response lateEnd = api.delete("/v1/calls/" + callId + "?reason=cancelled", tenant.key());
        assertThat(lateEnd.status()).isEqualTo(200);
        assertThat(lateEnd.json().path("status").asText()).isEqualTo("timeout");
        assertThat(apns.receivedFor(voip)).hasSize(2);
    }

    @Test
    void callsTimedOutOnSeveralNodesAtOnceEachBecomeOneMissedCall() throws Exception {
        iphone("iphone-sweep-" + tenant.userId());
        int n = 40;
        for (int i = 0; i < n; i++) {
            // as another node would have left them: rung, then its ring time ran out
            sql.update("""
                    INSERT INTO calls (app_id, call_id, test, callee, caller_id, caller_name, video, ring_seconds,
                                       created_at, ring_until)
                    VALUES (?, ?, false, ?, 'caller-7', 'Ada', false, 5, now() - interval '10 seconds',
                            now() - interval '5 seconds')""", tenant.app(), "sweep-" + i, tenant.userId());
        }
        ExecutorService nodes = Executors.newFixedThreadPool(4);
        try {
            List<Future<Integer>> ended = new ArrayList<>();
            for (int node = 0; node < 4; node++) {
                ended.add(nodes.submit(() -> calls.endTimedOut(7)));
            }
            for (Future<Integer> f : ended) {
                f.get();
            }
        } finally {
            nodes.shutdown();
        }
        await().atMost(DEADLINE).untilAsserted(() -> assertThat(sql.count(
                "SELECT count(*) FROM calls WHERE app_id = ? AND end_reason = 'timeout'", tenant.app())).isEqualTo(n));
        assertThat(sql.count("SELECT count(*) FROM notifications WHERE app_id = ? AND request->>'category' = 'call.missed'",
                tenant.app())).isEqualTo(n);
        assertThat(sql.count("SELECT count(DISTINCT missed_notification_id) FROM calls WHERE app_id = ?", tenant.app()))
                .isEqualTo(n);
    }

    @Test
    void callEndedLeftUnsentByANodeThatDiedIsSentAgain() {
        String installation = "iphone-stuck-" + tenant.userId();
        String voip = iphone(installation);
        String callId = "stuck-" + tenant.userId();
        ring(call(callId, tenant.userId(), 60));
        // as a node leaves it when it dies after ending the call, before sending call.ended
        sql.update("UPDATE calls SET ended_at = now() - interval '2 minutes', end_reason = 'cancelled' "
                + "WHERE app_id = ? AND call_id = ?", tenant.app(), callId);
        sql.update("UPDATE call_routes SET end_status = 'sending', updated_at = now() - interval '2 minutes' "
                + "WHERE app_id = ? AND call_id = ?", tenant.app(), callId);

        await().atMost(DEADLINE).untilAsserted(() -> assertThat(apns.receivedFor(voip)).hasSize(2));
        JsonNode ended = json(apns.receivedFor(voip).get(1).payload());
        assertThat(ended.path("type").asText()).isEqualTo("call.ended");
        assertThat(ended.path("reason").asText()).isEqualTo("cancelled");
        await().atMost(DEADLINE).untilAsserted(() -> assertThat(sql.count(
                "SELECT count(*) FROM call_routes WHERE app_id = ? AND call_id = ? AND end_status = 'sent'",
                tenant.app(), callId)).isEqualTo(1L));
        assertThat(api.delete("/v1/calls/" + callId, tenant.key()).json().path("routes").get(0).path("status").asText())
                .isEqualTo("sent");
        assertThat(apns.receivedFor(voip)).as("sent again once").hasSize(2);
    }

    @Test
    void routesSayWhyNothingRang() {
        JsonNode nobody = ring(call("nobody-" + tenant.userId(), "no-such-user-" + tenant.userId(), 30));
        assertThat(nobody.path("routes")).hasSize(1);
        assertThat(nobody.path("routes").get(0).has("installationId")).isFalse();
        assertThat(nobody.path("routes").get(0).path("status").asText()).isEqualTo("suppressed");
        assertThat(nobody.path("routes").get(0).path("reason").asText()).isEqualTo("no_device");

        String alertOnly = apnsToken();
        register("ipad-" + tenant.userId(), iosDevice(tenant.app(), alertOnly));
        JsonNode noVoip = ring(call("novoip-" + tenant.userId(), tenant.userId(), 30));
        JsonNode r = route(noVoip, "ipad-" + tenant.userId());
        assertThat(r.path("channel").asText()).isEqualTo("voip");
        assertThat(r.path("status").asText()).isEqualTo("suppressed");
        assertThat(r.path("reason").asText()).isEqualTo("no_voip_token");
        assertThat(apns.receivedFor(alertOnly)).as("VoIP pushes go to VoIP tokens only").isEmpty();

        // an app without gateway credentials
        Fixtures.Tenant bare = fixtures.tenant();
        String voip = apnsToken();
        Map<String, Object> iphone = iosDevice(bare.app(), apnsToken());
        iphone.put("voipToken", voip);
        assertThat(api.put("/v1/devices/iphone-bare-" + bare.userId(), bare.userToken(), iphone).status()).isIn(200, 201);
        String android = fcmToken();
        assertThat(api.put("/v1/devices/pixel-bare-" + bare.userId(), bare.userToken(), androidDevice(bare.app(), android))
                .status()).isIn(200, 201);
        Api.Response answer = api.post("/v1/calls", bare.key(), call("bare-" + bare.userId(), bare.userId(), 30));
        assertThat(answer.status()).as(answer.toString()).isEqualTo(200);
        assertThat(answer.json().path("routes")).hasSize(2).allSatisfy(route -> {
            assertThat(route.path("status").asText()).isEqualTo("suppressed");
            assertThat(route.path("reason").asText()).isEqualTo("not_configured");
        });
        assertThat(apns.receivedFor(voip)).isEmpty();
        assertThat(fcmSendsTo(android)).isEmpty();
    }

    @Test
    void testKeyRingsNothingAndSaysSimulated() {
        String voip = iphone("iphone-test-" + tenant.userId());
        String testKey = fixtures.key(tenant.app(), "test", "calls");
        String callId = "test-" + tenant.userId();

        Api.Response answer = api.post("/v1/calls", testKey, call(callId, tenant.userId(), 30));
        assertThat(answer.status()).as(answer.toString()).isEqualTo(200);
        assertThat(route(answer.json(), "iphone-test-" + tenant.userId()).path("status").asText()).isEqualTo("simulated");
        Api.Response ended = api.delete("/v1/calls/" + callId + "?reason=declined", testKey);
        assertThat(route(ended.json(), "iphone-test-" + tenant.userId()).path("status").asText()).isEqualTo("simulated");
        assertThat(apns.receivedFor(voip)).isEmpty();
    }

    @Test
    void deadVoipTokenIsRemovedAndNotRungAgain() {
        String installation = "iphone-dead-" + tenant.userId();
        String voip = iphone(installation);
        apns.answer(voip, MockApns.Answer.unregistered(Instant.now().plusSeconds(5)));

        JsonNode first = ring(call("dead-1-" + tenant.userId(), tenant.userId(), 30));
        assertThat(route(first, installation).path("status").asText()).isEqualTo("failed");
        assertThat(route(first, installation).path("reason").asText()).isEqualTo("Unregistered");
        assertThat(sql.count("SELECT count(*) FROM devices WHERE installation_id = ? AND voip_token IS NULL", installation))
                .isEqualTo(1L);
        assertThat(sql.count("SELECT count(*) FROM devices WHERE installation_id = ? AND push_token IS NOT NULL", installation))
                .as("the alert token is another token").isEqualTo(1L);

        JsonNode second = ring(call("dead-2-" + tenant.userId(), tenant.userId(), 30));
        assertThat(route(second, installation).path("reason").asText()).isEqualTo("no_voip_token");
        Api.Response ended = api.delete("/v1/calls/dead-1-" + tenant.userId() + "?reason=cancelled", tenant.key());
        assertThat(route(ended.json(), installation).path("status").asText()).isEqualTo("suppressed");
        assertThat(apns.receivedFor(voip)).as("never used again").hasSize(1);
    }

    @Test
    void gatewayThatDoesNotAnswerInTimeGivesATimeoutRoute() {
        String installation = "iphone-slow-" + tenant.userId();
        iphone(installation);
        MockApns.Gate gate = apns.hold();
        try {
            long t0 = System.nanoTime();
            JsonNode answer = ring(call("slow-" + tenant.userId(), tenant.userId(), 30));
            Duration took = Duration.ofNanos(System.nanoTime() - t0);
            assertThat(route(answer, installation).path("status").asText()).isEqualTo("failed");
            assertThat(route(answer, installation).path("reason").asText()).isEqualTo("timeout");
            assertThat(took).as("answered at the deadline, not later").isLessThan(Duration.ofSeconds(10));
        } finally {
            gate.open();
        }
    }

    @Test
    void eventsForTheWebhookAreRecorded() {
        api.patch("/v1/apps/" + tenant.app(), Fixtures.ADMIN_KEY,
                Map.of("webhook", Map.of("url", "http://127.0.0.1:9/hook", "secret", "whsec-0123456789abcdef")));
        iphone("iphone-hook-" + tenant.userId());
        String callId = "hook-" + tenant.userId();
        await().atMost(DEADLINE).untilAsserted(() -> {
            // the app's settings reach the call path within a few seconds
            String id = callId + "-" + System.nanoTime();
            ring(call(id, tenant.userId(), 30));
            assertThat(sql.count("SELECT count(*) FROM webhook_events WHERE app_id = ? AND type = 'call.routed' "
                    + "AND data->>'callId' = ?", tenant.app(), id)).isEqualTo(1L);
            api.delete("/v1/calls/" + id + "?reason=declined", tenant.key());
            assertThat(sql.count("SELECT count(*) FROM webhook_events WHERE app_id = ? AND type = 'call.ended' "
                    + "AND data->>'callId' = ? AND data->>'reason' = 'declined'", tenant.app(), id)).isEqualTo(1L);
        });
    }

    @Test
    void badRequestsAreRefusedNamingTheField() {
        assertField(Map.of("callId", "bad id!", "callee", "u", "caller", Map.of("id", "c")), "callId");
        assertField(Map.of("callId", "x".repeat(129), "callee", "u", "caller", Map.of("id", "c")), "callId");
        assertField(Map.of("callId", "ok", "callee", "u", "caller", Map.of("id", "c"), "ringSeconds", 4), "ringSeconds");
        assertField(Map.of("callId", "ok", "callee", "u", "caller", Map.of("id", "c"), "ringSeconds", 121), "ringSeconds");
        assertField(Map.of("callId", "ok", "callee", "u", "caller", Map.of("id", "c", "name", "n".repeat(101))), "caller.name");
        assertField(Map.of("callId", "ok", "callee", "a/b", "caller", Map.of("id", "c")), "callee");
        assertField(Map.of("callId", "ok", "caller", Map.of("id", "c")), "callee");
        assertField(Map.of("callId", "ok", "callee", "u", "caller", Map.of("id", "c"), "ring", 30), "ring");
        assertField(Map.of("callId", "ok", "callee", "u", "caller", Map.of("id", "c"), "video", "yes"), "video");

        assertThat(api.delete("/v1/calls/no-such-call", tenant.key()).status()).isEqualTo(404);
        Api.Response badReason = api.delete("/v1/calls/any?reason=timeout", tenant.key());
        assertThat(badReason.status()).isEqualTo(400);
        assertThat(Fixtures.fields(badReason.json())).containsExactly("reason");
        Api.Response badId = api.delete("/v1/calls/" + "x".repeat(129), tenant.key());
        assertThat(badId.status()).isEqualTo(400);
        assertThat(Fixtures.fields(badId.json())).containsExactly("callId");

        String sendOnly = fixtures.key(tenant.app(), "live", "send");
        assertThat(api.post("/v1/calls", sendOnly, call("scope", tenant.userId(), 30)).status()).isEqualTo(403);
        assertThat(api.post("/v1/calls", null, call("anon", tenant.userId(), 30)).status()).isEqualTo(401);
        assertThat(api.get("/v1/calls/anything", tenant.userToken()).status()).isEqualTo(403);
    }

    private void assertField(Map<String, Object> body, String field) {
        Api.Response r = api.post("/v1/calls", tenant.key(), body);
        assertThat(r.status()).as(r.toString()).isEqualTo(400);
        assertThat(r.contentType()).startsWith("application/problem+json");
        assertThat(Fixtures.fields(r.json())).as(r.toString()).contains(field);
    }

    @Test
    void anotherAppsCallIsNotFound() {
        iphone("iphone-other-" + tenant.userId());
        String callId = "mine-" + tenant.userId();
        ring(call(callId, tenant.userId(), 60));
        Fixtures.Tenant other = fixtures.tenant();
        assertThat(api.get("/v1/calls/" + callId, other.key()).status()).isEqualTo(404);
        assertThat(api.delete("/v1/calls/" + callId, other.key()).status()).isEqualTo(404);
        assertThat(api.get("/v1/calls/" + callId, tenant.key()).json().path("status").asText()).isEqualTo("ringing");
    }

    /** The callee's devices as this node holds them in memory, once a call read them. */
    private void awaitKnown(String userId, int devices) {
        await().atMost(DEADLINE).until(() -> directory.devices(tenant.app(), userId).map(List::size).orElse(-1) == devices);
    }

    /** How many calls of the tenant's app had this outcome of ringing from memory. */
    private double memory(String outcome) {
        return api.get("/metrics", null).body().lines()
                .filter(l -> l.startsWith("herald_calls_memory_total{") && l.contains("app=\"" + tenant.app() + "\"")
                        && l.contains("outcome=\"" + outcome + "\""))
                .mapToDouble(l -> Double.parseDouble(l.substring(l.lastIndexOf(' ') + 1))).sum();
    }

    private List<MockApns.Received> pushesOf(String token, String callId) {
        return apns.receivedFor(token).stream().filter(p -> callId.equals(p.header("apns-collapse-id"))).toList();
    }

    @Test
    void aCalleeCalledBeforeRingsFromMemoryWithTheSamePushes() {
        String voip = iphone("iphone-mem-" + tenant.userId());
        String android = fcmToken();
        register("pixel-mem-" + tenant.userId(), androidDevice(tenant.app(), android));
        await().atMost(DEADLINE).until(directory::ready);
        ring(call("mem-1-" + tenant.userId(), tenant.userId(), 30));
        awaitKnown(tenant.userId(), 2);
        double rangBefore = memory("rang");

        String callId = "mem-2-" + tenant.userId();
        JsonNode answer = ring(call(callId, tenant.userId(), 30));

        assertThat(memory("rang")).as("rang from memory").isEqualTo(rangBefore + 1);
        assertThat(memory("rang_late")).as("nothing left for after the read").isZero();
        assertThat(answer.path("routes")).hasSize(2).allSatisfy(r -> assertThat(r.path("status").asText()).isEqualTo("sent"));
        List<MockApns.Received> pushes = pushesOf(voip, callId);
        assertThat(pushes).as("once").hasSize(1);
        MockApns.Received push = pushes.get(0);
        assertThat(push.header("apns-topic")).isEqualTo(BUNDLE + ".voip");
        assertThat(push.header("apns-push-type")).isEqualTo("voip");
        assertThat(push.header("apns-priority")).isEqualTo("10");
        JsonNode payload = json(push.payload());
        assertThat(payload.path("type").asText()).isEqualTo("call.incoming");
        assertThat(payload.path("callerName").asText()).isEqualTo("Ada Lovelace");
        List<FakeFcm.Send> sends = fcmSendsTo(android).stream()
                .filter(f -> callId.equals(f.message().at("/data/callId").asText())).toList();
        assertThat(sends).hasSize(1);
        assertThat(sends.get(0).message().at("/android/priority").asText()).isEqualToIgnoringCase("high");
        assertThat(sends.get(0).message().at("/android/ttl").asText()).isEqualTo("30s");

        // ended like any call: call.ended on the routes stored for it
        Api.Response ended = api.delete("/v1/calls/" + callId + "?reason=declined", tenant.key());
        assertThat(ended.json().path("routes")).allSatisfy(r -> assertThat(r.path("status").asText()).isEqualTo("sent"));
        assertThat(pushesOf(voip, callId)).hasSize(2);
        assertThat(json(pushesOf(voip, callId).get(1).payload()).path("reason").asText()).isEqualTo("declined");
    }

    @Test
    void aDeviceThatLeftTheCalleeIsNotRungFromMemory() {
        String kept = iphone("iphone-kept-" + tenant.userId());
        String deleted = iphone("iphone-deleted-" + tenant.userId());
        String moved = iphone("iphone-moved-" + tenant.userId());
        await().atMost(DEADLINE).until(directory::ready);
        ring(call("left-1-" + tenant.userId(), tenant.userId(), 30));
        awaitKnown(tenant.userId(), 3);

        // the user signs out of one phone, and another user signs in on a second one
        assertThat(api.delete("/v1/devices/iphone-deleted-" + tenant.userId(), tenant.userToken()).status()).isEqualTo(204);
        String stranger = "stranger-" + tenant.userId();
        Map<String, Object> phone = iosDevice(tenant.app(), apnsToken());
        phone.put("voipToken", moved);
        Api.Response taken = api.put("/v1/devices/iphone-moved-" + tenant.userId(),
                fixtures.userToken(tenant.key(), stranger), phone);
        assertThat(taken.status()).as(taken.toString()).isIn(200, 201);
        // PostgreSQL's notice reaches this node's memory
        await().atMost(DEADLINE).until(() -> directory.devices(tenant.app(), tenant.userId()).isEmpty());

        String callId = "left-2-" + tenant.userId();
        JsonNode answer = ring(call(callId, tenant.userId(), 30));

        assertThat(answer.path("routes")).hasSize(1);
        assertThat(route(answer, "iphone-kept-" + tenant.userId()).path("status").asText()).isEqualTo("sent");
        assertThat(pushesOf(kept, callId)).hasSize(1);
        assertThat(pushesOf(deleted, callId)).as("signed out").isEmpty();
        assertThat(pushesOf(moved, callId)).as("another user's phone now").isEmpty();
        assertThat(memory("rang_stale")).isZero();
    }

    @Test
    void memoryThatMissedAChangeIsSetRightByPostgresql() throws Exception {
        String kept = iphone("iphone-a-" + tenant.userId());
        String gone = iphone("iphone-b-" + tenant.userId());
        await().atMost(DEADLINE).until(directory::ready);
        ring(call("miss-1-" + tenant.userId(), tenant.userId(), 30));
        awaitKnown(tenant.userId(), 2);
        // changes whose notice never came (triggers off in this session, as a lost notice would leave memory)
        String added = apnsToken();
        try (Connection c = sql.connect(); Statement s = c.createStatement()) {
            s.execute("SET session_replication_role = replica");
            s.execute("DELETE FROM devices WHERE installation_id = 'iphone-b-" + tenant.userId() + "'");
            s.execute("INSERT INTO devices (installation_id, app_id, user_id, platform, push_token, push_token_updated_at,"
                    + " voip_token, voip_token_updated_at, created_at, updated_at, last_seen_at) VALUES ('iphone-c-"
                    + tenant.userId() + "', '" + tenant.app() + "', '" + tenant.userId() + "', 'ios', '" + apnsToken()
                    + "', now(), '" + added + "', now(), now(), now(), now())");
        }
        assertThat(directory.devices(tenant.app(), tenant.userId()).orElseThrow()).hasSize(2);

        String callId = "miss-2-" + tenant.userId();
        JsonNode answer = ring(call(callId, tenant.userId(), 30));

        // the routes are what PostgreSQL holds: the device memory missed rang once it was read
        assertThat(answer.path("routes")).hasSize(2);
        assertThat(route(answer, "iphone-a-" + tenant.userId()).path("status").asText()).isEqualTo("sent");
        assertThat(route(answer, "iphone-c-" + tenant.userId()).path("status").asText()).isEqualTo("sent");
        assertThat(pushesOf(kept, callId)).hasSize(1);
        assertThat(pushesOf(added, callId)).hasSize(1);
        assertThat(memory("rang_late")).isEqualTo(1);
        // the device that rang from memory but is no longer the callee's is told the call ended, at once
        await().atMost(DEADLINE).until(() -> pushesOf(gone, callId).size() == 2);
        assertThat(json(pushesOf(gone, callId).get(0).payload()).path("type").asText()).isEqualTo("call.incoming");
        JsonNode ended = json(pushesOf(gone, callId).get(1).payload());
        assertThat(ended.path("type").asText()).isEqualTo("call.ended");
        assertThat(ended.path("reason").asText()).isEqualTo("cancelled");
        assertThat(memory("rang_stale")).isEqualTo(1);
        // and memory now holds what PostgreSQL read
        awaitKnown(tenant.userId(), 2);
        assertThat(directory.devices(tenant.app(), tenant.userId()).orElseThrow())
                .extracting(CallStore.CalleeDevice::installationId)
                .containsExactlyInAnyOrder("iphone-a-" + tenant.userId(), "iphone-c-" + tenant.userId());
    }

    @Test
    void aCallIdUsedBeforeIsNotRungAgainFromMemory() {
        String voip = iphone("iphone-used-" + tenant.userId());
        await().atMost(DEADLINE).until(directory::ready);
        String first = "used-1-" + tenant.userId();
        ring(call(first, tenant.userId(), 30));
        awaitKnown(tenant.userId(), 1);
        assertThat(api.delete("/v1/calls/" + first + "?reason=answered", tenant.key()).status()).isEqualTo(200);
        // a call another node stored (its notice reaches this node)
        String elsewhere = "used-2-" + tenant.userId();
        sql.update("""
                INSERT INTO calls (app_id, call_id, test, callee, caller_id, caller_name, video, ring_seconds,
                                   created_at, ring_until)
                VALUES (?, ?, false, ?, 'caller-7', 'Ada', false, 60, now(), now() + interval '60 seconds')""",
                tenant.app(), elsewhere, tenant.userId());
        await().atMost(DEADLINE).until(() -> directory.mayBeUsed(tenant.app(), elsewhere));
        double maybeUsed = memory("call_id_maybe_used");

        JsonNode again = ring(call(first, tenant.userId(), 30));
        assertThat(again.path("status").asText()).as("the call as it ended").isEqualTo("answered");
        ring(call(elsewhere, tenant.userId(), 30));

        assertThat(memory("call_id_maybe_used")).isEqualTo(maybeUsed + 2);
        assertThat(pushesOf(voip, first)).as("call.incoming and call.ended, once each").hasSize(2);
        assertThat(pushesOf(voip, elsewhere)).as("the other node's call").isEmpty();
        assertThat(memory("duplicate")).isZero();
    }

    @Test
    void aNodeStartingLoadsEveryStoredCallIdBeforeRingingFromMemory() {
        iphone("iphone-load-" + tenant.userId());
        String stored = "load-" + tenant.userId();
        ring(call(stored, tenant.userId(), 30));
        try (CallDirectory starting = new CallDirectory(dataSource, bodies, true, 1_000, Duration.ofMinutes(1), 1_000)) {
            assertThat(starting.claimNew(tenant.app(), "fresh-" + tenant.userId())).as("not before it loaded").isFalse();
            await().atMost(DEADLINE).until(starting::ready);
            assertThat(starting.claimNew(tenant.app(), stored)).as("stored before the node started").isFalse();
            assertThat(starting.claimNew(tenant.app(), "fresh-" + tenant.userId())).isTrue();
            assertThat(starting.claimNew(tenant.app(), "fresh-" + tenant.userId())).as("claimed once").isFalse();
            assertThat(starting.devices(tenant.app(), tenant.userId())).as("devices are read for calls, not loaded").isEmpty();
        }
    }

    @Test
    void aCallRungFromMemoryThatCouldNotBeStoredIsEndedOnTheDevices() throws Exception {
        String voip = iphone("iphone-memlost-" + tenant.userId());
        await().atMost(DEADLINE).until(directory::ready);
        ring(call("memlost-1-" + tenant.userId(), tenant.userId(), 30));
        awaitKnown(tenant.userId(), 1);
        String callId = "memlost-2-" + tenant.userId();
        CompletableFuture<Api.Response> answer;
        try (Connection lock = sql.connect()) {
            // the call's lock, held elsewhere: the call rings from memory, then waits for its lock
            lock.setAutoCommit(false);
            try (Statement s = lock.createStatement()) {
                s.execute("SELECT pg_advisory_xact_lock(x'43414c4c'::int, hashtext('" + tenant.app() + "/" + callId + "'))");
            }
            answer = CompletableFuture.supplyAsync(() -> api.post("/v1/calls", tenant.key(), call(callId, tenant.userId(), 60)));
            await().atMost(DEADLINE).until(() -> pushesOf(voip, callId).size() == 1);
            // PostgreSQL drops the connection deciding the call before it read anything
            await().atMost(DEADLINE).until(() -> sql.count("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    + " WHERE wait_event_type = 'Lock' AND wait_event = 'advisory'") == 1);
            lock.rollback();
        }
        Api.Response failed = answer.get(DEADLINE.toSeconds(), TimeUnit.SECONDS);
        assertThat(failed.status()).as(failed.toString()).isGreaterThanOrEqualTo(500);
        await().atMost(DEADLINE).until(() -> pushesOf(voip, callId).size() == 2);
        JsonNode ended = json(pushesOf(voip, callId).get(1).payload());
        assertThat(ended.path("type").asText()).isEqualTo("call.ended");
        assertThat(ended.path("reason").asText()).isEqualTo("cancelled");
        assertThat(api.get("/v1/calls/" + callId, tenant.key()).status()).isEqualTo(404);
        // posted again, it is decided by PostgreSQL (memory may have seen the callId) and rings
        JsonNode again = ring(call(callId, tenant.userId(), 60));
        assertThat(route(again, "iphone-memlost-" + tenant.userId()).path("status").asText()).isEqualTo("sent");
        assertThat(pushesOf(voip, callId)).hasSize(3);
    }
}
