package dev.herald.auth;

import dev.herald.support.Api;
import dev.herald.support.Fixtures;
import dev.herald.support.HeraldTest;
import io.micronaut.test.extensions.junit5.annotation.MicronautTest;
import org.junit.jupiter.api.Test;

import java.time.Instant;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Function;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Who may do what: every endpoint against every kind of credential (none, the admin key, an app key of
 * each scope, a test key, another app's key, the user's token, another user's, an expired and a forged
 * token), each answer's status asserted as the contract's "Who calls" section says: no or an invalid
 * credential 401, the wrong kind or scope 403, another app's or user's resource by id 404.
 */
@MicronautTest(transactional = false)
class AccessMatrixTest extends HeraldTest {

    /** application-test.yml's HERALD_JWT_SECRET. */
    private static final String HERALD_SECRET = "herald-test-jwt-secret-0123456789-0123456789-abcdef";

    enum Who { NONE, ADMIN, SEND, CALLS, USERS, APP_ADMIN, TEST_KEY, OTHER_APP, USER, OTHER_USER, EXPIRED, FORGED }

    private final Map<Who, String> bearer = new EnumMap<>(Who.class);
    private String app;
    private String user;
    private String notification;
    private String installation;

    private void credentials() throws Exception {
        app = fixtures.app();
        String other = fixtures.app();
        user = Fixtures.unique("matrix-user");
        String otherUser = Fixtures.unique("matrix-other");
        bearer.put(Who.ADMIN, Fixtures.ADMIN_KEY);
        bearer.put(Who.SEND, fixtures.key(app, "live", "send"));
        bearer.put(Who.CALLS, fixtures.key(app, "live", "calls"));
        bearer.put(Who.USERS, fixtures.key(app, "live", "users"));
        bearer.put(Who.APP_ADMIN, fixtures.key(app, "live", "admin"));
        bearer.put(Who.TEST_KEY, fixtures.key(app, "test", "send", "calls", "users", "admin"));
        bearer.put(Who.OTHER_APP, fixtures.key(other, "live", "send", "calls", "users", "admin"));
        bearer.put(Who.USER, fixtures.userToken(bearer.get(Who.USERS), user));
        bearer.put(Who.OTHER_USER, fixtures.userToken(bearer.get(Who.USERS), otherUser));
        bearer.put(Who.EXPIRED, Fixtures.jwt(HERALD_SECRET, user, "herald", Instant.now().minusSeconds(3600)));
        bearer.put(Who.FORGED, Fixtures.jwt("not-the-deployment-secret-0123456789-0123456789", user, "herald", Instant.now().plusSeconds(3600)));

        installation = "matrix-phone-" + user;
        assertThat(api.put("/v1/devices/" + installation, bearer.get(Who.USER),
                Fixtures.iosDevice(app, Fixtures.apnsToken())).status()).isEqualTo(201);
        Api.Response sent = api.post("/v1/notifications", bearer.get(Who.SEND),
                Map.of("to", Map.of("users", List.of(user)), "title", "Matrix"));
        assertThat(sent.status()).isEqualTo(202);
        notification = sent.json().path("id").asText();
    }

    /** One request; {@code allowed} maps each credential to its status, everyone else gets {@code otherwise}. */
    private record Case(String name, Function<String, Api.Response> call, Map<Who, Integer> allowed, int otherwise) {
    }

    private static Map<Who, Integer> only(Object... whoThenStatus) {
        Map<Who, Integer> m = new LinkedHashMap<>();
        for (int i = 0; i < whoThenStatus.length; i += 2) {
            m.put((Who) whoThenStatus[i], (Integer) whoThenStatus[i + 1]);
        }
        return m;
    }

    private List<Case> cases() {
        Map<String, Object> call = Map.of("callId", "matrix-call", "callee", user, "caller", Map.of("id", "c"));
        return List.of(
                new Case("POST /v1/apps", b -> api.post("/v1/apps", b, Map.of("id", Fixtures.unique("m"), "name", "M")),
                        only(Who.ADMIN, 201), 403),
                new Case("GET /v1/apps", b -> api.get("/v1/apps", b), only(Who.ADMIN, 200), 403),
                new Case("GET /v1/apps/{app}", b -> api.get("/v1/apps/" + app, b),
                        only(Who.ADMIN, 200, Who.APP_ADMIN, 200, Who.TEST_KEY, 200), 403),
                new Case("PATCH /v1/apps/{app}", b -> api.patch("/v1/apps/" + app, b, Map.of("name", "Renamed")),
                        only(Who.ADMIN, 200, Who.APP_ADMIN, 200, Who.TEST_KEY, 200), 403),
                new Case("GET /v1/apps/{app}/keys", b -> api.get("/v1/apps/" + app + "/keys", b),
                        only(Who.ADMIN, 200, Who.APP_ADMIN, 200, Who.TEST_KEY, 200), 403),
                new Case("POST /v1/users/{user}/tokens", b -> api.post("/v1/users/" + user + "/tokens", b, Map.of()),
                        only(Who.USERS, 201, Who.TEST_KEY, 201, Who.OTHER_APP, 201), 403),
                new Case("GET /v1/users/{user}/presence", b -> api.get("/v1/users/" + user + "/presence", b),
                        only(Who.USERS, 200, Who.TEST_KEY, 200, Who.OTHER_APP, 200), 403),
                new Case("GET /v1/devices", b -> api.get("/v1/devices", b), only(Who.USER, 200, Who.OTHER_USER, 200), 403),
                new Case("GET /v1/devices/{own}", b -> api.get("/v1/devices/" + installation, b),
                        only(Who.USER, 200, Who.OTHER_USER, 404), 403),
                new Case("GET /v1/preferences", b -> api.get("/v1/preferences", b),
                        only(Who.USER, 200, Who.OTHER_USER, 200), 403),
                new Case("GET /v1/inbox", b -> api.get("/v1/inbox", b), only(Who.USER, 200, Who.OTHER_USER, 200), 403),
                new Case("GET /v1/inbox/unread-count", b -> api.get("/v1/inbox/unread-count", b),
                        only(Who.USER, 200, Who.OTHER_USER, 200), 403),
                new Case("POST /v1/receipts", b -> api.post("/v1/receipts", b,
                        Map.of("notificationId", notification, "event", "received")),
                        only(Who.USER, 204, Who.OTHER_USER, 404), 403),
                new Case("PUT /v1/presence", b -> api.put("/v1/presence", b, Map.of()),
                        only(Who.USER, 204, Who.OTHER_USER, 204), 403),
                new Case("POST /v1/notifications", b -> api.post("/v1/notifications", b,
                        Map.of("to", Map.of("users", List.of(user)), "title", "Who")),
                        only(Who.SEND, 202, Who.TEST_KEY, 202, Who.OTHER_APP, 202), 403),
                new Case("GET /v1/notifications/{id}", b -> api.get("/v1/notifications/" + notification, b),
                        only(Who.SEND, 200, Who.TEST_KEY, 200, Who.OTHER_APP, 404), 403),
                new Case("GET /v1/calls/{id}", b -> api.get("/v1/calls/no-such-call", b),
                        only(Who.CALLS, 404, Who.TEST_KEY, 404, Who.OTHER_APP, 404), 403),
                new Case("POST /v1/calls (validation after access)", b -> api.post("/v1/calls", b, Map.of("callId", "bad id!")),
                        only(Who.CALLS, 400, Who.TEST_KEY, 400, Who.OTHER_APP, 400), 403),
                new Case("GET /v1/stats", b -> api.get("/v1/stats?app=" + app, b),
                        only(Who.ADMIN, 200, Who.APP_ADMIN, 200, Who.TEST_KEY, 200), 403),
                new Case("GET /health", b -> api.get("/health", b), allEverywhere(200), 200),
                new Case("GET /dashboard", b -> api.get("/dashboard", b), allEverywhere(200), 200));
    }

    private static Map<Who, Integer> allEverywhere(int status) {
        Map<Who, Integer> m = new EnumMap<>(Who.class);
        for (Who w : Who.values()) {
            m.put(w, status);
        }
        return m;
    }

    @Test
    void everyEndpointAgainstEveryCredential() throws Exception {
        credentials();
        List<String> wrong = new ArrayList<>();
        for (Case c : cases()) {
            for (Who who : Who.values()) {
                int expected = c.allowed().getOrDefault(who, switch (who) {
                    case NONE, EXPIRED, FORGED -> 401;
                    default -> c.otherwise();
                });
                Api.Response r = c.call().apply(bearer.get(who));
                if (r.status() != expected) {
                    wrong.add(c.name() + " as " + who + ": expected " + expected + ", got " + r.status() + " " + r.body());
                } else if (r.status() >= 400) {
                    if (!r.contentType().startsWith("application/problem+json")) {
                        wrong.add(c.name() + " as " + who + ": " + r.status() + " without a problem body");
                    }
                }
            }
        }
        assertThat(wrong).isEmpty();
    }
}
