package dev.herald.apps;

import com.fasterxml.jackson.databind.JsonNode;
import dev.herald.support.Api;
import dev.herald.support.HeraldTest;
import io.micronaut.test.extensions.junit5.annotation.MicronautTest;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.List;
import java.util.Map;

import static dev.herald.support.Fixtures.ADMIN_KEY;
import static dev.herald.support.Problems.assertInvalid;
import static dev.herald.support.Problems.assertProblem;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

@MicronautTest(transactional = false)
class AppKeyApiTest extends HeraldTest {

    @Test
    void showsAKeyOnceAndListsItWithoutTheSecret() {
        String app = fixtures.app();
        Api.Response created = api.post("/v1/apps/" + app + "/keys", ADMIN_KEY,
                Map.of("name", "backend", "mode", "live", "scopes", List.of("send", "users")));

        assertThat(created.status()).isEqualTo(201);
        JsonNode key = created.json();
        assertThat(key.path("key").asText()).startsWith("hk_live_").hasSizeGreaterThan(40);
        assertThat(key.path("mode").asText()).isEqualTo("live");
        assertThat(key.path("scopes")).extracting(JsonNode::asText).containsExactly("send", "users");

        Api.Response test = api.post("/v1/apps/" + app + "/keys", ADMIN_KEY,
                Map.of("name", "ci", "mode", "test", "scopes", List.of("send")));
        assertThat(test.json().path("key").asText()).startsWith("hk_test_");

        Api.Response listed = api.get("/v1/apps/" + app + "/keys", ADMIN_KEY);
        assertThat(listed.status()).isEqualTo(200);
        assertThat(listed.json().path("items")).hasSize(2);
        assertThat(listed.body()).doesNotContain(key.path("key").asText()).doesNotContain(test.json().path("key").asText());
        listed.json().path("items").forEach(item -> assertThat(item.path("key").isNull()).isTrue());
        assertThat(listed.json().path("items").get(0).path("prefix").asText()).hasSize(12);
    }

    @Test
    void aRevokedKeyIsRefusedWithinASecond() {
        String app = fixtures.app();
        Api.Response created = api.post("/v1/apps/" + app + "/keys", ADMIN_KEY,
                Map.of("name", "doomed", "mode", "live", "scopes", List.of("users")));
        String key = created.json().path("key").asText();
        assertThat(api.post("/v1/users/u1/tokens", key, Map.of()).status()).isEqualTo(201);

        long revokedAt = System.nanoTime();
        assertThat(api.delete("/v1/apps/" + app + "/keys/" + created.json().path("id").asText(), ADMIN_KEY).status())
                .isEqualTo(204);

        await().atMost(Duration.ofSeconds(1)).pollInterval(Duration.ofMillis(20))
                .until(() -> api.post("/v1/users/u1/tokens", key, Map.of()).status() == 401);
        assertThat(Duration.ofNanos(System.nanoTime() - revokedAt)).isLessThan(Duration.ofSeconds(1));
        JsonNode listed = api.get("/v1/apps/" + app + "/keys", ADMIN_KEY).json().path("items").get(0);
        assertThat(listed.path("revokedAt").isNull()).isFalse();
        assertThat(api.delete("/v1/apps/" + app + "/keys/" + created.json().path("id").asText(), ADMIN_KEY).status())
                .as("revoking twice is harmless").isEqualTo(204);
    }

    @Test
    void validatesKeyRequests() {
        String app = fixtures.app();
        assertInvalid(api.post("/v1/apps/" + app + "/keys", ADMIN_KEY, Map.of("name", "x", "mode", "live",
                "scopes", List.of("send", "everything"))), "scopes[1]");
        assertInvalid(api.post("/v1/apps/" + app + "/keys", ADMIN_KEY, Map.of("name", "x", "mode", "prod",
                "scopes", List.of("send"))), "mode");
        assertInvalid(api.post("/v1/apps/" + app + "/keys", ADMIN_KEY, Map.of("name", "x", "mode", "live",
                "scopes", List.of())), "scopes");
        assertProblem(api.post("/v1/apps/no-such-app/keys", ADMIN_KEY, Map.of("name", "x", "mode", "live",
                "scopes", List.of("send"))), 404);
        assertProblem(api.delete("/v1/apps/" + app + "/keys/key_nope", ADMIN_KEY), 404);
    }

    @Test
    void anAppAdminKeyManagesItsOwnKeysOnly() {
        var tenant = fixtures.tenant();
        String other = fixtures.app();
        assertThat(api.post("/v1/apps/" + tenant.app() + "/keys", tenant.key(),
                Map.of("name", "x", "mode", "test", "scopes", List.of("send"))).status()).isEqualTo(201);
        assertProblem(api.post("/v1/apps/" + other + "/keys", tenant.key(),
                Map.of("name", "x", "mode", "test", "scopes", List.of("send"))), 403);
        assertProblem(api.get("/v1/apps/" + other + "/keys", tenant.key()), 403);
        String usersOnly = fixtures.key(tenant.app(), "live", "users");
        assertProblem(api.get("/v1/apps/" + tenant.app() + "/keys", usersOnly), 403);
    }
}
