package dev.herald.notifications;

import dev.herald.support.Api;
import dev.herald.support.Fixtures;
import dev.herald.support.HeraldTest;
import io.micronaut.test.extensions.junit5.annotation.MicronautTest;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.IntStream;
import java.util.stream.Stream;

import static dev.herald.support.Fixtures.fields;
import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.params.provider.Arguments.arguments;

/** What {@code POST /v1/notifications} refuses, and the field each refusal names. Nothing is stored for them. */
@MicronautTest(transactional = false)
class NotificationValidationTest extends HeraldTest {

    private Fixtures.Tenant tenant;

    @BeforeEach
    void tenant() {
        tenant = fixtures.tenant();
    }

    static Stream<org.junit.jupiter.params.provider.Arguments> badBodies() {
        return Stream.of(
                arguments("no target", Map.of("title", "Hi"), "to"),
                arguments("two targets", Map.of("to", Map.of("users", List.of("u"), "tags", List.of("t")), "title", "Hi"), "to"),
                arguments("empty users", Map.of("to", Map.of("users", List.of()), "title", "Hi"), "to.users"),
                arguments("user id with a slash", Map.of("to", Map.of("users", List.of("ok", "a/b")), "title", "Hi"), "to.users[1]"),
                arguments("bad installation id", Map.of("to", Map.of("devices", List.of("has space")), "title", "Hi"), "to.devices[0]"),
                arguments("neither title nor data", Map.of("to", Map.of("users", List.of("u"))), "title"),
                arguments("body without title", Map.of("to", Map.of("users", List.of("u")), "body", "x", "data", Map.of("k", "v")), "body"),
                arguments("title of a wrong type", Map.of("to", Map.of("users", List.of("u")), "title", 5), "title"),
                arguments("title in a bad locale", Map.of("to", Map.of("users", List.of("u")), "title", Map.of("not a locale", "x")), "title"),
                arguments("empty title", Map.of("to", Map.of("users", List.of("u")), "title", ""), "title"),
                arguments("data value not a string", Map.of("to", Map.of("users", List.of("u")), "title", "Hi", "data", Map.of("n", 1)), "data.n"),
                arguments("reserved data key", Map.of("to", Map.of("users", List.of("u")), "title", "Hi", "data", Map.of("aps", "x")), "data.aps"),
                arguments("google data key", Map.of("to", Map.of("users", List.of("u")), "title", "Hi", "data", Map.of("google.x", "x")), "data.google.x"),
                arguments("negative ttl", Map.of("to", Map.of("users", List.of("u")), "title", "Hi", "ttlSeconds", -1), "ttlSeconds"),
                arguments("ttl over 28 days", Map.of("to", Map.of("users", List.of("u")), "title", "Hi", "ttlSeconds", 2_419_201), "ttlSeconds"),
                arguments("unknown priority", Map.of("to", Map.of("users", List.of("u")), "title", "Hi", "priority", "urgent"), "priority"),
                arguments("unknown type", Map.of("to", Map.of("users", List.of("u")), "title", "Hi", "type", "DEBUG"), "type"),
                arguments("unknown channel", Map.of("to", Map.of("users", List.of("u")), "title", "Hi", "channels", List.of("sms")), "channels[0]"),
                arguments("badge word", Map.of("to", Map.of("users", List.of("u")), "title", "Hi", "badge", "many"), "badge"),
                arguments("negative badge", Map.of("to", Map.of("users", List.of("u")), "title", "Hi", "badge", -1), "badge"),
                arguments("sendAt not a time", Map.of("to", Map.of("users", List.of("u")), "title", "Hi", "sendAt", "tomorrow"), "sendAt"),
                arguments("sendAt too far", Map.of("to", Map.of("users", List.of("u")), "title", "Hi",
                        "sendAt", Instant.now().plus(31, ChronoUnit.DAYS).toString()), "sendAt"),
                arguments("unknown field", Map.of("to", Map.of("users", List.of("u")), "title", "Hi", "subtitle", "x"), "subtitle"),
                arguments("NUL in the body", Map.of("to", Map.of("users", List.of("u")), "title", "Hi", "body", "a\u0000b"), "body"),
                arguments("NUL in a data value", Map.of("to", Map.of("users", List.of("u")), "title", "Hi", "data", Map.of("k", "\u0000")), "data"),
                arguments("link with a space", Map.of("to", Map.of("users", List.of("u")), "title", "Hi", "link", "https://a b"), "link"));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("badBodies")
    void refusesWithTheFieldNamed(String what, Map<String, Object> body, String field) {
        Api.Response refused = api.post("/v1/notifications", tenant.key(), body);

        assertThat(refused.status()).as(refused.toString()).isEqualTo(400);
        assertThat(refused.contentType()).startsWith("application/problem+json");
        assertThat(fields(refused.json())).as(refused.toString()).contains(field);
    }

    @Test
    void refusesMoreThanTenThousandIds() {
        List<String> users = IntStream.rangeClosed(0, 10_000).mapToObj(i -> "u" + i).toList();
        Api.Response refused = api.post("/v1/notifications", tenant.key(), Map.of("to", Map.of("users", users), "title", "Hi"));

        assertThat(refused.status()).as(refused.toString()).isEqualTo(400);
        assertThat(fields(refused.json())).contains("to.users");
    }

    @Test
    void acceptsTenThousandUsers() {
        List<String> users = IntStream.range(0, 10_000).mapToObj(i -> "u" + i).toList();
        Api.Response accepted = api.post("/v1/notifications", tenant.key(), Map.of("to", Map.of("users", users), "title", "Hi"));

        assertThat(accepted.status()).as(accepted.toString()).isEqualTo(202);
        assertThat(accepted.json().path("recipients").asInt()).isEqualTo(10_000);
    }

    @Test
    void answers413WhenThePushPayloadIsTooLarge() {
        Map<String, Object> data = new LinkedHashMap<>();
        data.put("a", "x".repeat(2_500));
        data.put("b", "y".repeat(2_500));
        Api.Response refused = api.post("/v1/notifications", tenant.key(),
                Map.of("to", Map.of("users", List.of("u")), "title", "Hi", "data", data));

        assertThat(refused.status()).as(refused.toString()).isEqualTo(413);
        assertThat(refused.contentType()).startsWith("application/problem+json");
        assertThat(refused.json().path("detail").asText()).contains("bytes");
    }

    @Test
    void answers413WhenOneLocaleIsTooLarge() {
        Map<String, Object> title = new LinkedHashMap<>();
        title.put("en", "Short");
        title.put("de", "L".repeat(3_990));
        Api.Response refused = api.post("/v1/notifications", tenant.key(),
                Map.of("to", Map.of("users", List.of("u")), "title", title, "body", "b".repeat(200)));

        assertThat(refused.status()).as(refused.toString()).isEqualTo(413);
    }

    @Test
    void answers413WhenATitleAndABodyOfDifferentLocalesMeet() {
        // a recipient in "es" gets the first title (fr) and the first body (de): 2 x 1,990 bytes together
        Map<String, Object> title = new LinkedHashMap<>();
        title.put("fr", "T".repeat(1_990));
        title.put("de", "t");
        Map<String, Object> body = new LinkedHashMap<>();
        body.put("de", "B".repeat(1_990));
        body.put("fr", "b");
        Api.Response refused = api.post("/v1/notifications", tenant.key(),
                Map.of("to", Map.of("users", List.of("u")), "title", title, "body", body));

        assertThat(refused.status()).as(refused.toString()).isEqualTo(413);
    }

    @Test
    void needsTheSendScope() {
        String usersOnly = fixtures.key(tenant.app(), "live", "users");
        Map<String, Object> body = Map.of("to", Map.of("users", List.of("u")), "title", "Hi");

        assertThat(api.post("/v1/notifications", usersOnly, body).status()).isEqualTo(403);
        assertThat(api.post("/v1/notifications", tenant.userToken(), body).status()).isEqualTo(403);
        assertThat(api.post("/v1/notifications", null, body).status()).isEqualTo(401);
        assertThat(api.post("/v1/notifications", Fixtures.ADMIN_KEY, body).status()).isEqualTo(403);
    }

    @Test
    void idempotencyKeyAnswersTheFirstAnswerAgainAndRefusesAnotherBody() {
        Map<String, Object> body = Map.of("to", Map.of("users", List.of("u1", "u2")), "title", "Hi");
        Api.Response first = api.sendWithHeader("POST", "/v1/notifications", tenant.key(), body, "Idempotency-Key", "order-42");
        Map<String, Object> reordered = new LinkedHashMap<>();
        reordered.put("title", "Hi");
        reordered.put("to", Map.of("users", List.of("u1", "u2")));
        Api.Response again = api.sendWithHeader("POST", "/v1/notifications", tenant.key(), reordered, "Idempotency-Key", "order-42");
        Api.Response other = api.sendWithHeader("POST", "/v1/notifications", tenant.key(),
                Map.of("to", Map.of("users", List.of("u1")), "title", "Hi"), "Idempotency-Key", "order-42");
        String otherApp = fixtures.key(fixtures.app(), "live", "send");
        Api.Response otherAppSameKey = api.sendWithHeader("POST", "/v1/notifications", otherApp, body, "Idempotency-Key", "order-42");

        assertThat(first.status()).as(first.toString()).isEqualTo(202);
        assertThat(again.status()).isEqualTo(202);
        assertThat(again.json()).isEqualTo(first.json());
        assertThat(other.status()).as(other.toString()).isEqualTo(409);
        assertThat(other.contentType()).startsWith("application/problem+json");
        assertThat(otherAppSameKey.status()).isEqualTo(202);
        assertThat(otherAppSameKey.json().path("id").asText()).isNotEqualTo(first.json().path("id").asText());
    }

    @jakarta.inject.Inject
    dev.herald.support.Sql sql;

    @jakarta.inject.Inject
    IdempotencyKeyCleanup cleanup;

    @Test
    void idempotencyKeysAreForgottenAfter24Hours() {
        Map<String, Object> body = Map.of("to", Map.of("users", List.of("u1")), "title", "Hi");
        Api.Response first = api.sendWithHeader("POST", "/v1/notifications", tenant.key(), body, "Idempotency-Key", "old-key");
        sql.update("UPDATE idempotency_keys SET created_at = now() - interval '25 hours'"
                + " WHERE app_id = ? AND key = 'old-key'", tenant.app());

        cleanup.run();

        assertThat(sql.count("SELECT count(*) FROM idempotency_keys WHERE app_id = ?", tenant.app())).isZero();
        Api.Response again = api.sendWithHeader("POST", "/v1/notifications", tenant.key(), body, "Idempotency-Key", "old-key");
        assertThat(again.status()).isEqualTo(202);
        assertThat(again.json().path("id").asText()).isNotEqualTo(first.json().path("id").asText());
    }

    @Test
    void anotherAppsNotificationIsNotFound() {
        Api.Response accepted = api.post("/v1/notifications", tenant.key(),
                Map.of("to", Map.of("users", List.of("u")), "title", "Hi"));
        String otherKey = fixtures.key(fixtures.app(), "live", "send");
        String id = accepted.json().path("id").asText();

        assertThat(api.get("/v1/notifications/" + id, tenant.key()).status()).isEqualTo(200);
        assertThat(api.get("/v1/notifications/" + id, otherKey).status()).isEqualTo(404);
        assertThat(api.delete("/v1/notifications/" + id, otherKey).status()).isEqualTo(404);
        assertThat(api.get("/v1/notifications/ntf_nope", tenant.key()).status()).isEqualTo(404);
    }

    @Test
    void scheduledNotificationCanBeCancelledOnce() {
        String later = Instant.now().plus(1, ChronoUnit.HOURS).toString();
        Api.Response accepted = api.post("/v1/notifications", tenant.key(),
                Map.of("to", Map.of("users", List.of("u")), "title", "Hi", "sendAt", later));
        String id = accepted.json().path("id").asText();

        assertThat(accepted.status()).isEqualTo(202);
        assertThat(accepted.json().path("status").asText()).isEqualTo("scheduled");
        assertThat(api.get("/v1/notifications/" + id, tenant.key()).json().path("status").asText()).isEqualTo("scheduled");
        assertThat(api.delete("/v1/notifications/" + id, tenant.key()).status()).isEqualTo(204);
        assertThat(api.get("/v1/notifications/" + id, tenant.key()).json().path("status").asText()).isEqualTo("cancelled");
        assertThat(api.delete("/v1/notifications/" + id, tenant.key()).status()).isEqualTo(204);
    }

    @Test
    void aNotificationAlreadyRoutingCannotBeCancelled() {
        Api.Response accepted = api.post("/v1/notifications", tenant.key(),
                Map.of("to", Map.of("users", List.of("u")), "title", "Hi"));
        Api.Response cancel = api.delete("/v1/notifications/" + accepted.json().path("id").asText(), tenant.key());

        assertThat(cancel.status()).as(cancel.toString()).isEqualTo(409);
    }

    @Test
    void limitOver100IsRefused() {
        Api.Response accepted = api.post("/v1/notifications", tenant.key(),
                Map.of("to", Map.of("users", List.of("u")), "title", "Hi"));
        Api.Response page = api.get("/v1/notifications/" + accepted.json().path("id").asText() + "?limit=101", tenant.key());

        assertThat(page.status()).isEqualTo(400);
        assertThat(fields(page.json())).contains("limit");
    }
}
