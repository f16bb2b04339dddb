package dev.herald.stats;

import com.eatthepath.pushy.apns.server.RejectionReason;
import com.fasterxml.jackson.databind.JsonNode;
import dev.herald.support.Api;
import dev.herald.support.Fixtures;
import dev.herald.support.GatewayTest;
import dev.herald.support.MockApns;
import io.micronaut.test.extensions.junit5.annotation.MicronautTest;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static dev.herald.support.Fixtures.apnsToken;
import static dev.herald.support.Fixtures.iosDevice;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/**
 * {@code GET /v1/stats}: the counts match the deliveries a test produced, in minute, hour and day
 * buckets, with the failure reasons; who may read them; bad ranges are refused naming the parameter.
 */
@MicronautTest(transactional = false)
class StatsTest extends GatewayTest {

    private static final Duration DEADLINE = Duration.ofSeconds(30);

    @Override
    protected Map<String, String> moreProperties() {
        return Map.of("herald.stats.compact-every", "200ms");
    }

    private String iphone(String installationId) {
        String token = apnsToken();
        Api.Response r = api.put("/v1/devices/" + installationId, tenant.userToken(), iosDevice(tenant.app(), token));
        assertThat(r.status()).as(r.toString()).isIn(200, 201);
        return token;
    }

    private String send(Map<String, Object> to) {
        Map<String, Object> body = new LinkedHashMap<>();
        body.put("to", to);
        body.put("title", "Counted");
        Api.Response accepted = api.post("/v1/notifications", tenant.key(), body);
        assertThat(accepted.status()).as(accepted.toString()).isEqualTo(202);
        return accepted.json().path("id").asText();
    }

    /** Sums the answer's buckets by "channel/status". */
    private static Map<String, Long> totals(JsonNode stats) {
        Map<String, Long> totals = new HashMap<>();
        stats.path("buckets").forEach(b -> totals.merge(b.path("channel").asText() + "/" + b.path("status").asText(),
                b.path("count").asLong(), Long::sum));
        return totals;
    }

    @Test
    void countsMatchTheDeliveriesInEveryBucketSize() {
        String good = iphone("iphone-good-" + tenant.userId());
        iphone("iphone-good2-" + tenant.userId());
        String bad = iphone("iphone-bad-" + tenant.userId());
        apns.answer(bad, MockApns.Answer.reject(RejectionReason.BAD_TOPIC));
        String toUser = send(Map.of("users", List.of(tenant.userId())));
        send(Map.of("devices", List.of("iphone-good-" + tenant.userId())));
        await().atMost(DEADLINE).until(() -> apns.receivedFor(good).size() == 2);

        JsonNode[] minute = new JsonNode[1];
        await().atMost(DEADLINE).untilAsserted(() -> {
            minute[0] = api.get("/v1/stats?bucket=minute&app=" + tenant.app(), Fixtures.ADMIN_KEY).json();
            assertThat(totals(minute[0])).as(minute[0].toString()).containsEntry("push/sent", 3L)
                    .containsEntry("push/failed", 1L).containsEntry("inApp/sent", 1L)
                    .containsEntry("live/suppressed", 1L).containsEntry("email/suppressed", 1L)
                    .doesNotContainKey("push/queued");
        });
        assertThat(minute[0].path("buckets").get(0).path("t").asText()).endsWith(":00Z");
        assertThat(minute[0].path("reasons").toString()).contains("\"reason\":\"BadTopic\"");
        JsonNode reason = null;
        for (JsonNode r : minute[0].path("reasons")) {
            if (r.path("reason").asText().equals("BadTopic")) {
                reason = r;
            }
        }
        assertThat(reason.path("channel").asText()).isEqualTo("push");
        assertThat(reason.path("status").asText()).isEqualTo("failed");
        assertThat(reason.path("count").asLong()).isEqualTo(1);

        for (String size : List.of("hour", "day")) {
            JsonNode stats = api.get("/v1/stats?bucket=" + size + "&app=" + tenant.app(), Fixtures.ADMIN_KEY).json();
            assertThat(totals(stats)).as(size).isEqualTo(totals(minute[0]));
        }

        // a receipt moves deliveries on: counted again in the status they reached
        assertThat(api.post("/v1/receipts", tenant.userToken(), Map.of("notificationId", toUser, "event", "opened"))
                .status()).isEqualTo(204);
        await().atMost(DEADLINE).untilAsserted(() -> assertThat(totals(api.get("/v1/stats?bucket=minute&app="
                + tenant.app(), Fixtures.ADMIN_KEY).json())).as("each delivery counted once, in its latest status")
                .containsEntry("push/opened", 2L).containsEntry("inApp/opened", 1L).containsEntry("push/sent", 1L)
                .doesNotContainKey("inApp/sent"));

        String adminKey = fixtures.key(tenant.app(), "live", "admin");
        Api.Response own = api.get("/v1/stats?bucket=day", adminKey);
        assertThat(own.status()).as(own.toString()).isEqualTo(200);
        assertThat(own.json().path("app").asText()).isEqualTo(tenant.app());
        assertThat(totals(own.json())).containsEntry("push/sent", 1L).containsEntry("push/opened", 2L);
    }

    @Test
    void callsAndRemovedTokensAreCountedApart() {
        String dead = iphone("iphone-dead-" + tenant.userId());
        apns.answer(dead, MockApns.Answer.unregistered(Instant.now().plusSeconds(5)));
        send(Map.of("users", List.of(tenant.userId())));
        String voip = apnsToken();
        Map<String, Object> phone = iosDevice(tenant.app(), apnsToken());
        phone.put("voipToken", voip);
        assertThat(api.put("/v1/devices/iphone-call-" + tenant.userId(), tenant.userToken(), phone).status()).isIn(200, 201);
        String callId = "stats-call-" + tenant.userId();
        assertThat(api.post("/v1/calls", tenant.key(), Map.of("callId", callId, "callee", tenant.userId(),
                "caller", Map.of("id", "c-1"), "ringSeconds", 30)).status()).isIn(200, 201);
        assertThat(api.delete("/v1/calls/" + callId + "?reason=answered", tenant.key()).status()).isEqualTo(200);

        await().atMost(DEADLINE).untilAsserted(() -> {
            JsonNode stats = api.get("/v1/stats?bucket=hour&app=" + tenant.app(), Fixtures.ADMIN_KEY).json();
            assertThat(stats.path("tokensRemoved").toString()).as(stats.toString())
                    .contains("\"status\":\"push\"").contains("\"reason\":\"Unregistered\"");
            assertThat(stats.path("calls").toString()).contains("\"status\":\"rang\"")
                    .contains("\"status\":\"ended\",\"reason\":\"answered\"");
            assertThat(totals(stats)).as("calls and tokens are not deliveries").doesNotContainKeys("call/rang", "token/push");
        });
    }

    @Test
    void onlyTheOperatorAndTheAppsAdminKeysMayRead() {
        assertThat(api.get("/v1/stats?app=" + tenant.app(), null).status()).isEqualTo(401);
        String sendOnly = fixtures.key(tenant.app(), "live", "send", "calls", "users");
        assertThat(api.get("/v1/stats?app=" + tenant.app(), sendOnly).status()).as("no admin scope").isEqualTo(403);
        assertThat(api.get("/v1/stats?app=" + tenant.app(), tenant.key()).status()).as("admin scope").isEqualTo(200);
        assertThat(api.get("/v1/stats?app=" + tenant.app(), tenant.userToken()).status()).isEqualTo(403);
        Fixtures.Tenant other = fixtures.tenant();
        String otherAdmin = fixtures.key(other.app(), "live", "admin");
        assertThat(api.get("/v1/stats?app=" + tenant.app(), otherAdmin).status()).isEqualTo(403);
        assertThat(api.get("/v1/stats?app=" + tenant.app() + "&bucket=week", sendOnly).status())
                .as("who may ask before what was asked").isEqualTo(403);
        assertThat(api.get("/v1/stats?app=no-such-app", Fixtures.ADMIN_KEY).status()).isEqualTo(404);
    }

    @Test
    void badRangesAreRefusedNamingTheParameter() {
        Instant now = Instant.now().truncatedTo(ChronoUnit.SECONDS);
        assertField("/v1/stats?bucket=week&app=" + tenant.app(), "bucket");
        assertField("/v1/stats?from=yesterday&app=" + tenant.app(), "from");
        assertField("/v1/stats?to=2026-13-01T00:00:00Z&app=" + tenant.app(), "to");
        assertField("/v1/stats?from=" + now + "&to=" + now.minusSeconds(60) + "&app=" + tenant.app(), "from");
        assertField("/v1/stats?bucket=minute&from=" + now.minus(Duration.ofDays(2)) + "&app=" + tenant.app(), "from");
        assertField("/v1/stats", "app");
        Api.Response month = api.get("/v1/stats?bucket=day&from=" + now.minus(Duration.ofDays(30)) + "&app=" + tenant.app(),
                Fixtures.ADMIN_KEY);
        assertThat(month.status()).as(month.toString()).isEqualTo(200);
    }

    private void assertField(String path, String field) {
        Api.Response r = api.get(path, Fixtures.ADMIN_KEY);
        assertThat(r.status()).as(r.toString()).isEqualTo(400);
        assertThat(r.contentType()).startsWith("application/problem+json");
        assertThat(Fixtures.fields(r.json())).containsExactly(field);
    }
}
