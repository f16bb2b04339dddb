package dev.herald.api;

import dev.herald.support.Api;
import dev.herald.support.Fixtures;
import dev.herald.support.HeraldTest;
import io.micronaut.test.extensions.junit5.annotation.MicronautTest;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import org.junit.jupiter.api.Test;

import java.net.URLEncoder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.function.Supplier;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * A fuzz pass over every endpoint that takes a body, a path id or a query: random JSON built from the
 * API's own field names and hostile values (jqwik's generators, a fixed seed so a failure replays),
 * invalid UTF-8, deep nesting, overlong and odd ids. Whatever arrives, the answer is never a 500: a 4xx
 * problem, or a success for input that happens to be valid.
 */
@MicronautTest(transactional = false)
class HostileInputTest extends HeraldTest {

    @jakarta.inject.Inject
    dev.herald.support.Sql sql;

    private static final int SAMPLES = 40;
    private static final List<String> FIELDS = List.of("to", "users", "devices", "tags", "title", "body", "data",
            "ttlSeconds", "sendAt", "priority", "category", "type", "link", "channels", "collapseKey", "badge",
            "sound", "app", "platform", "pushToken", "voipToken", "locale", "timezone", "tags", "appVersion",
            "callId", "callee", "caller", "id", "name", "ringSeconds", "video", "notificationId", "installationId",
            "event", "email", "quietHours", "start", "end", "inApp", "push", "live", "apns", "fcm", "webhook",
            "url", "secret", "mode", "scopes", "limits", "keyPerSecond", "syncBadges", "en", "fr");

    private final Random random = new Random(20261130L);

    /** Strings that have broken parsers: control characters, lone surrogates, huge, empty, numbers as text. */
    private static Arbitrary<String> hostileStrings() {
        return Arbitraries.oneOf(
                Arbitraries.strings().all().ofMaxLength(40),
                Arbitraries.strings().withChars("\u0000\u0001\u001f\u007f\r\n\t\"\\/<>&%'").ofMaxLength(20),
                Arbitraries.of("", " ", "\ud800", "\udfff", "9".repeat(400), "-1", "1e309", "NaN", "null", "true",
                        "2026-13-45T25:61:00Z", "ntf_" + "0".repeat(32), "../../etc/passwd", "a/b", "\u202e",
                        "x".repeat(5000), "http://127.0.0.1/hook\r\nX-Injected: 1", "Subject\r\nBcc: all@example.com"));
    }

    private static Arbitrary<Object> scalars() {
        return Arbitraries.oneOf(
                hostileStrings().map(s -> (Object) s),
                Arbitraries.integers().map(i -> (Object) i),
                Arbitraries.longs().map(l -> (Object) l),
                Arbitraries.doubles().map(d -> (Object) d),
                Arbitraries.of(true, false).map(b -> (Object) b),
                Arbitraries.just(null));
    }

    private Object value(int depth) {
        int kind = random.nextInt(depth > 4 ? 1 : 4);
        if (kind == 0) {
            return scalars().sample();
        }
        if (kind == 1) {
            List<Object> list = new ArrayList<>();
            for (int i = random.nextInt(4); i > 0; i--) {
                list.add(value(depth + 1));
            }
            return list;
        }
        Map<String, Object> object = new LinkedHashMap<>();
        for (int i = random.nextInt(6); i > 0; i--) {
            String key = random.nextInt(5) == 0 ? hostileStrings().sample() : FIELDS.get(random.nextInt(FIELDS.size()));
            object.put(key, value(depth + 1));
        }
        return object;
    }

    /** A body: mostly random JSON objects, sometimes not an object, not JSON, not UTF-8, or nested 10,000 deep. */
    private byte[] body() {
        int kind = random.nextInt(20);
        if (kind == 0) {
            byte[] bytes = new byte[random.nextInt(64) + 1];
            random.nextBytes(bytes);
            return bytes;
        }
        if (kind == 1) {
            return ("{\"to\":" + "[".repeat(10_000) + "]".repeat(10_000) + "}").getBytes(StandardCharsets.UTF_8);
        }
        if (kind == 2) {
            return new byte[] {'{', '"', 't', 'i', 't', 'l', 'e', '"', ':', '"', (byte) 0xC3, (byte) 0x28, '"', '}'};
        }
        Object root = kind == 3 ? value(3) : valueObject();
        try {
            return Api.JSON.writeValueAsBytes(root);
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }

    private Object valueObject() {
        Object v;
        do {
            v = value(0);
        } while (!(v instanceof Map));
        return v;
    }

    private Api.Response assertNever500(String what, Supplier<Api.Response> call, List<String> failures) {
        Api.Response r = call.get();
        if (r.status() >= 500) {
            failures.add(what + " -> " + r);
        } else if (r.status() >= 400 && !r.contentType().startsWith("application/problem+json")) {
            failures.add(what + " -> " + r.status() + " without a problem body");
        } else if (r.body().contains("Exception") || r.body().contains("\tat ")) {
            failures.add(what + " -> internals in the answer: " + r.body());
        }
        return r;
    }

    @Test
    void noBodyPathOrQueryGetsA500() {
        String app = fixtures.app();
        String key = fixtures.key(app, "live", "send", "calls", "users", "admin");
        String user = Fixtures.unique("fuzz");
        String token = fixtures.userToken(key, user);
        List<String> failures = new ArrayList<>();
        java.util.Set<String> acceptedIds = new java.util.HashSet<>();
        int keysMade = 1;
        for (int i = 0; i < SAMPLES; i++) {
            byte[] body = body();
            String shown = new String(body, 0, Math.min(body.length, 200), StandardCharsets.UTF_8);
            Api.Response sent = assertNever500("POST /v1/notifications " + shown,
                    () -> api.sendBytes("POST", "/v1/notifications", key, "application/json", body), failures);
            if (sent.status() == 202) {
                acceptedIds.add(sent.json().path("id").asText());
            }
            assertNever500("PUT /v1/devices " + shown, () -> api.sendBytes("PUT", "/v1/devices/fuzz-" + user, token, "application/json", body), failures);
            assertNever500("PUT /v1/preferences " + shown, () -> api.sendBytes("PUT", "/v1/preferences", token, "application/json", body), failures);
            assertNever500("POST /v1/calls " + shown, () -> api.sendBytes("POST", "/v1/calls", key, "application/json", body), failures);
            assertNever500("POST /v1/receipts " + shown, () -> api.sendBytes("POST", "/v1/receipts", token, "application/json", body), failures);
            assertNever500("POST /v1/users/tokens " + shown, () -> api.sendBytes("POST", "/v1/users/" + user + "/tokens", key, "application/json", body), failures);
            assertNever500("POST /v1/apps " + shown, () -> api.sendBytes("POST", "/v1/apps", Fixtures.ADMIN_KEY, "application/json", body), failures);
            assertNever500("PATCH /v1/apps " + shown, () -> api.sendBytes("PATCH", "/v1/apps/" + app, Fixtures.ADMIN_KEY, "application/merge-patch+json", body), failures);
            if (assertNever500("POST keys " + shown, () -> api.sendBytes("POST", "/v1/apps/" + app + "/keys",
                    Fixtures.ADMIN_KEY, "application/json", body), failures).status() == 201) {
                keysMade++;
            }

            // within the request line's 4,096 bytes (a longer one is refused whole: see the test below)
            String id = URLEncoder.encode(hostileStrings().filter(s -> s.length() <= 300).sample(), StandardCharsets.UTF_8);
            String q = URLEncoder.encode(hostileStrings().filter(s -> s.length() <= 300).sample(), StandardCharsets.UTF_8);
            assertNever500("GET notification " + id, () -> api.get("/v1/notifications/" + id + "?cursor=" + q + "&limit=" + q, key), failures);
            assertNever500("DELETE notification " + id, () -> api.delete("/v1/notifications/" + id, key), failures);
            assertNever500("GET device " + id, () -> api.get("/v1/devices/" + id, token), failures);
            assertNever500("DELETE call " + id, () -> api.delete("/v1/calls/" + id + "?reason=" + q, key), failures);
            assertNever500("GET presence " + id, () -> api.get("/v1/users/" + id + "/presence", key), failures);
            assertNever500("GET inbox " + q, () -> api.get("/v1/inbox?cursor=" + q + "&limit=" + q + "&app=" + q, token), failures);
            assertNever500("read inbox " + id, () -> api.send("POST", "/v1/inbox/" + id + "/read", token, "application/json", "{}"), failures);
            assertNever500("GET stats " + q, () -> api.get("/v1/stats?app=" + app + "&from=" + q + "&to=" + q + "&bucket=" + q, key), failures);
            Api.Response keyed = assertNever500("Idempotency-Key " + q, () -> api.sendWithHeader("POST", "/v1/notifications", key,
                    Map.of("to", Map.of("users", List.of(user)), "title", "t"), "Idempotency-Key",
                    hostileStrings().filter(s -> s.chars().allMatch(c -> c >= 0x20 && c < 0x7f)).sample()), failures);
            if (keyed.status() == 202) {
                acceptedIds.add(keyed.json().path("id").asText());
            }
        }
        assertThat(failures).isEmpty();
        // nothing stored half: exactly the notifications answered 202 exist, each with its routing done
        // or under way, and exactly the keys answered 201
        assertThat(sql.count("SELECT count(*) FROM notifications WHERE app_id = ?", app))
                .as("notifications stored").isEqualTo(acceptedIds.size());
        assertThat(sql.count("SELECT count(*) FROM api_keys WHERE app_id = ?", app)).as("keys stored").isEqualTo(keysMade);
    }

    @Test
    void anOverlongRequestLineOrHeaderIsRefusedSayingWhich() throws Exception {
        // a client of its own: the server closes a connection after refusing an overlong request line
        var client = java.net.http.HttpClient.newHttpClient();
        var line = client.send(java.net.http.HttpRequest.newBuilder(server.getURI().resolve(
                "/v1/notifications/" + "x".repeat(5_000))).GET().build(), java.net.http.HttpResponse.BodyHandlers.ofString());
        assertThat(line.statusCode()).isEqualTo(400);
        assertThat(line.headers().firstValue("content-type").orElse("")).startsWith("application/problem+json");
        assertThat(line.body()).contains("request line or its headers are too long").doesNotContain("body");
        var headers = java.net.http.HttpClient.newHttpClient().send(java.net.http.HttpRequest.newBuilder(server.getURI()
                .resolve("/health")).header("X-Big", "y".repeat(10_000)).GET().build(), java.net.http.HttpResponse.BodyHandlers.ofString());
        assertThat(headers.statusCode()).isEqualTo(400);
        assertThat(headers.body()).contains("request line or its headers are too long");
    }
}
