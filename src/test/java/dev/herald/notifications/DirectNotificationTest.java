package dev.herald.notifications;

import com.fasterxml.jackson.databind.JsonNode;
import dev.herald.support.Api;
import dev.herald.support.Fixtures;
import dev.herald.support.GatewayTest;
import dev.herald.support.MockApns;
import dev.herald.support.RawHttp;
import dev.herald.support.RawHttp.Raw;
import io.micronaut.test.extensions.junit5.annotation.MicronautTest;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeSet;
import java.util.function.Supplier;

import static dev.herald.support.Fixtures.apnsToken;
import static dev.herald.support.Fixtures.iosDevice;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/**
 * {@code POST /v1/notifications} served straight from Netty ({@link DirectNotifications}) answers exactly
 * as the controller does, stores the same notification (its push reaches APNs), leaves a credential it
 * cannot vouch for to the controller, and answers a refusal that comes after the rate limit let the
 * request in with the controller's problem. An app key's first request always goes through Micronaut (which looks the key up); while this
 * node remembers the key (half a second), the next ones are served directly.
 */
@MicronautTest(transactional = false)
class DirectNotificationTest extends GatewayTest {

    private static final String DIRECT = "herald_notifications_direct_total";
    private static final Duration DEADLINE = Duration.ofSeconds(20);

    private double direct() {
        return Api.metric(api.get("/metrics", null).body(), DIRECT).orElse(0);
    }

    /** What {@code send} answered, and whether it was answered directly. */
    private record Sent(Api.Response response, boolean direct) {
    }

    private Sent sent(Supplier<Api.Response> send) {
        double before = direct();
        Api.Response response = send.get();
        return new Sent(response, direct() > before);
    }

    /**
     * Sends until one answer came from each path: the key's first request is Micronaut's, and one made while
     * the key is remembered is served directly (a slow machine may let the key be forgotten in between).
     */
    private Map<Boolean, Api.Response> oneOfEach(Supplier<Api.Response> send) {
        Map<Boolean, Api.Response> byPath = new HashMap<>();
        await().atMost(DEADLINE).until(() -> {
            Sent s = sent(send);
            byPath.putIfAbsent(s.direct(), s.response());
            return byPath.size() == 2;
        });
        return byPath;
    }

    /** Makes this node remember the tenant's key, so that the next request may be served directly. */
    private void lookUpKey() {
        assertThat(api.get("/v1/notifications/ntf_" + "0".repeat(32), tenant.key()).status()).isEqualTo(404);
    }

    @Test
    void aDirectAnswerIsTheControllersAnswerAndItsPushIsDelivered() {
        String token = apnsToken();
        String installation = "direct-" + token.substring(0, 8);
        assertThat(api.put("/v1/devices/" + installation, tenant.userToken(), iosDevice(tenant.app(), token)).status())
                .isEqualTo(201);
        Map<String, Object> body = Map.of("to", Map.of("devices", List.of(installation)), "title", "Hello",
                "body", "Served from Netty", "data", Map.of("orderId", "42"));

        Map<Boolean, Api.Response> answers = oneOfEach(() -> api.post("/v1/notifications", tenant.key(), body));
        Api.Response framework = answers.get(false);
        Api.Response here = answers.get(true);

        assertThat(here.status()).isEqualTo(framework.status()).isEqualTo(202);
        assertThat(headerNames(here)).isEqualTo(headerNames(framework)).contains("content-type", "content-length", "date");
        assertThat(here.contentType()).isEqualTo(framework.contentType());
        assertThat(fieldNames(here.json())).containsExactlyElementsOf(fieldNames(framework.json()));
        assertThat(here.json().path("status").asText()).isEqualTo(framework.json().path("status").asText())
                .isEqualTo("accepted");
        assertThat(here.json().path("recipients").asInt()).isEqualTo(framework.json().path("recipients").asInt())
                .isEqualTo(1);
        String id = here.json().path("id").asText();
        assertThat(id).matches("ntf_[0-9a-f]{32}").isNotEqualTo(framework.json().path("id").asText());

        await().atMost(DEADLINE).untilAsserted(() -> {
            JsonNode status = api.get("/v1/notifications/" + id, tenant.key()).json();
            assertThat(status.path("status").asText()).as(status.toString()).isEqualTo("done");
            assertThat(status.path("counts").path("sent").asInt()).isEqualTo(1);
        });
        String apnsId = Fixtures.apnsId(id, installation);
        List<MockApns.Received> pushes = apns.receivedFor(token).stream()
                .filter(p -> apnsId.equalsIgnoreCase(p.header("apns-id"))).toList();
        assertThat(pushes).hasSize(1);
        assertThat(pushes.get(0).payload()).contains("\"Served from Netty\"").contains("\"orderId\":\"42\"");
        String requests = api.get("/metrics", null).body();
        assertThat(requests).as("both paths count as the route's requests")
                .containsPattern("http_server_requests_seconds_count\\{[^}]*status=\"202\"[^}]*uri=\"/v1/notifications\"");
    }

    @Test
    void requestsItDeclinesGetTheContractsProblems() {
        String noScope = fixtures.key(tenant.app(), "live", "users");
        Map<String, Object> good = Map.of("to", Map.of("users", List.of("someone")), "title", "Hi");
        Map<String, Object> unknownField = new HashMap<>(good);
        unknownField.put("colour", "red");
        Map<String, Object> tooLarge = Map.of("to", Map.of("users", List.of("someone")), "title", "Hi",
                "data", Map.of("a", "x".repeat(2_500), "b", "y".repeat(2_500)));
        // both keys looked up, so that only what is wrong with each request sends it to the controller
        assertThat(api.post("/v1/notifications", tenant.key(), good).status()).isEqualTo(202);
        assertThat(api.post("/v1/notifications", noScope, good).status()).isEqualTo(403);

        List<Sent> refused = List.of(
                sent(() -> api.post("/v1/notifications", tenant.key(), unknownField)),
                sent(() -> api.post("/v1/notifications", tenant.key(), tooLarge)),
                sent(() -> api.sendWithHeader("POST", "/v1/notifications", tenant.key(), good, "Idempotency-Key", "has space")),
                sent(() -> api.post("/v1/notifications", noScope, good)),
                sent(() -> api.post("/v1/notifications", "hk_live_" + "0".repeat(40), good)));

        assertThat(refused).extracting(s -> s.response().status()).containsExactly(400, 413, 400, 403, 401);
        assertThat(refused).allSatisfy(s -> assertThat(s.direct()).as(s.response().toString()).isFalse());
        assertThat(api.get("/metrics", null).body()).as("each refusal counted as the route's, whichever path answered it")
                .containsPattern("http_server_requests_seconds_count\\{[^}]*status=\"400\"[^}]*uri=\"/v1/notifications\"")
                .containsPattern("http_server_requests_seconds_count\\{[^}]*status=\"413\"[^}]*uri=\"/v1/notifications\"");
        assertThat(refused.subList(0, 4)).allSatisfy(s ->
                assertThat(s.response().contentType()).startsWith("application/problem+json"));
        assertThat(Fixtures.fields(refused.get(0).response().json())).containsExactly("colour");
        assertThat(Fixtures.fields(refused.get(2).response().json())).containsExactly("Idempotency-Key");
    }

    /**
     * An idempotency key replayed directly answers the first notification again; the same key with another
     * body is refused by the writer (after the body was checked) with the contract's 409, answered here.
     */
    @Test
    void anIdempotencyKeyIsHonouredOnEitherPath() {
        String key = Fixtures.unique("idem");
        Map<String, Object> body = Map.of("to", Map.of("users", List.of("someone")), "title", "Once");
        Map<String, Object> other = Map.of("to", Map.of("users", List.of("someone")), "title", "Twice");

        Map<Boolean, Api.Response> answers = oneOfEach(() ->
                api.sendWithHeader("POST", "/v1/notifications", tenant.key(), body, "Idempotency-Key", key));
        lookUpKey();
        Api.Response conflict = api.sendWithHeader("POST", "/v1/notifications", tenant.key(), other, "Idempotency-Key", key);

        assertThat(answers.get(true).status()).isEqualTo(answers.get(false).status()).isEqualTo(202);
        assertThat(answers.get(true).json().path("id").asText()).isEqualTo(answers.get(false).json().path("id").asText());
        assertThat(conflict.status()).as(conflict.toString()).isEqualTo(409);
        assertThat(conflict.contentType()).startsWith("application/problem+json");
        assertThat(conflict.json().path("status").asInt()).isEqualTo(409);
    }

    /**
     * Requests sent at once on one connection: a notification served directly, a status request Micronaut
     * answers, a notification it declines, and one more. The answers come back in the order asked.
     */
    @Test
    void pipelinedRequestsAreAnsweredInOrder() throws Exception {
        byte[] good = Api.JSON.writeValueAsBytes(Map.of("to", Map.of("users", List.of("a")), "title", "One"));
        byte[] bad = Api.JSON.writeValueAsBytes(Map.of("to", Map.of("users", List.of("a")), "title", "Two", "colour", "red"));
        byte[] alsoGood = Api.JSON.writeValueAsBytes(Map.of("to", Map.of("users", List.of("b")), "title", "Three"));
        List<Raw> answers = new ArrayList<>();
        double[] before = new double[1];
        // the key must still be remembered when the first is read: tried again should a slow moment make it forgotten
        await().atMost(DEADLINE).until(() -> {
            before[0] = direct();
            lookUpKey(); // right before the requests (reading the metrics can take longer than the key is remembered)
            answers.clear();
            answers.addAll(pipelined(
                    request("POST", "/v1/notifications", good),
                    request("GET", "/v1/notifications/ntf_" + "1".repeat(32), null),
                    request("POST", "/v1/notifications", bad),
                    request("POST", "/v1/notifications", alsoGood)));
            // the first served directly; the last mostly goes to Micronaut too (read while Micronaut still
            // owes the answers before it): either way the answers must come in order
            return direct() >= before[0] + 1;
        });

        assertThat(answers).extracting(Raw::status).containsExactly(202, 404, 400, 202);
        String first = Api.JSON.readTree(answers.get(0).body()).path("id").asText();
        String last = Api.JSON.readTree(answers.get(3).body()).path("id").asText();
        assertThat(first).matches("ntf_[0-9a-f]{32}");
        assertThat(last).matches("ntf_[0-9a-f]{32}").isNotEqualTo(first);
        assertThat(answers.get(2).headers().get("content-type")).startsWith("application/problem+json");
        assertThat(Fixtures.fields(Api.JSON.readTree(answers.get(2).body()))).containsExactly("colour");
        assertThat(api.get("/v1/notifications/" + last, tenant.key()).json().path("recipients").asInt()).isEqualTo(1);
    }

    private static TreeSet<String> headerNames(Api.Response response) {
        TreeSet<String> names = new TreeSet<>();
        response.headers().map().keySet().forEach(n -> names.add(n.toLowerCase(Locale.ROOT)));
        names.remove(":status");
        return names;
    }

    private static List<String> fieldNames(JsonNode node) {
        List<String> names = new ArrayList<>();
        node.fieldNames().forEachRemaining(names::add);
        return names;
    }

    private List<Raw> pipelined(byte[]... requests) throws IOException {
        return RawHttp.pipelined(server.getHost(), server.getPort(), requests);
    }

    private byte[] request(String method, String path, byte[] body) {
        return RawHttp.request(method, path, tenant.key(), body);
    }
}
