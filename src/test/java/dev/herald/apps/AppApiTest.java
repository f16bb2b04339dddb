package dev.herald.apps;

import com.fasterxml.jackson.databind.JsonNode;
import dev.herald.support.Api;
import dev.herald.support.Fixtures;
import dev.herald.support.HeraldTest;
import io.micronaut.test.extensions.junit5.annotation.MicronautTest;
import org.junit.jupiter.api.Test;

import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Map;

import static dev.herald.support.Fixtures.ADMIN_KEY;
import static dev.herald.support.Problems.assertInvalid;
import static dev.herald.support.Problems.assertProblem;
import static org.assertj.core.api.Assertions.assertThat;

@MicronautTest(transactional = false)
class AppApiTest extends HeraldTest {

    private static Map<String, Object> apns(String privateKey) {
        Map<String, Object> apns = new LinkedHashMap<>();
        apns.put("teamId", "TEAM123456");
        apns.put("keyId", "KEY1234567");
        apns.put("privateKey", privateKey);
        apns.put("bundleId", "com.example.chat");
        apns.put("environment", "sandbox");
        return apns;
    }

    @Test
    void createsAnAppAndNeverEchoesItsSecrets() {
        String id = Fixtures.unique("chat");
        String p8 = Fixtures.p8();
        Map<String, Object> account = Fixtures.serviceAccount("chat-project", "https://oauth2.googleapis.com/token");
        Map<String, Object> body = new LinkedHashMap<>();
        body.put("id", id);
        body.put("name", "Chat");
        body.put("apns", apns(p8));
        body.put("fcm", Map.of("serviceAccount", account));
        body.put("email", Map.of("from", "noreply@example.com"));
        body.put("webhook", Map.of("url", "https://hooks.example.com/herald", "secret", "whsec_0123456789abcdef"));
        body.put("syncBadges", true);

        Api.Response created = api.post("/v1/apps", ADMIN_KEY, body);

        assertThat(created.status()).as(created.toString()).isEqualTo(201);
        JsonNode app = created.json();
        assertThat(app.path("id").asText()).isEqualTo(id);
        assertThat(app.path("apns").path("configured").asBoolean()).isTrue();
        assertThat(app.path("apns").path("bundleId").asText()).isEqualTo("com.example.chat");
        assertThat(app.path("apns").has("privateKey")).isFalse();
        assertThat(app.path("fcm").path("configured").asBoolean()).isTrue();
        assertThat(app.path("fcm").path("projectId").asText()).isEqualTo("chat-project");
        assertThat(app.path("webhook").path("url").asText()).isEqualTo("https://hooks.example.com/herald");
        assertThat(app.path("email").path("from").asText()).isEqualTo("noreply@example.com");
        assertThat(app.path("syncBadges").asBoolean()).isTrue();
        String privateRsa = (String) account.get("private_key");
        for (Api.Response answer : new Api.Response[]{created, api.get("/v1/apps/" + id, ADMIN_KEY)}) {
            assertThat(answer.body()).doesNotContain("PRIVATE KEY", "whsec_0123456789abcdef",
                    p8.substring(40, 80), privateRsa.substring(40, 80), "private_key", "secret");
        }
    }

    @Test
    void refusesADuplicateId() {
        String id = fixtures.app();
        assertProblem(api.post("/v1/apps", ADMIN_KEY, Map.of("id", id, "name", "again")), 409);
    }

    @Test
    void validatesEveryBlock() {
        assertInvalid(api.post("/v1/apps", ADMIN_KEY, Map.of("id", "Bad_Id", "name", "x")), "id");
        assertInvalid(api.post("/v1/apps", ADMIN_KEY, Map.of("id", Fixtures.unique("a"))), "name");
        assertInvalid(api.post("/v1/apps", ADMIN_KEY,
                Map.of("id", Fixtures.unique("a"), "name", "x", "apns", apns("-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n"))),
                "apns.privateKey");
        Map<String, Object> noEnvironment = apns(Fixtures.p8());
        noEnvironment.put("environment", "staging");
        assertInvalid(api.post("/v1/apps", ADMIN_KEY, Map.of("id", Fixtures.unique("a"), "name", "x", "apns", noEnvironment)),
                "apns.environment");
        Map<String, Object> account = new HashMap<>(Fixtures.serviceAccount("p", "https://oauth2.googleapis.com/token"));
        account.remove("private_key");
        assertInvalid(api.post("/v1/apps", ADMIN_KEY,
                Map.of("id", Fixtures.unique("a"), "name", "x", "fcm", Map.of("serviceAccount", account))),
                "fcm.serviceAccount.private_key");
        Map<String, Object> garbledKey = new HashMap<>(Fixtures.serviceAccount("p", "https://oauth2.googleapis.com/token"));
        garbledKey.put("private_key", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
        assertInvalid(api.post("/v1/apps", ADMIN_KEY,
                Map.of("id", Fixtures.unique("a"), "name", "x", "fcm", Map.of("serviceAccount", garbledKey))),
                "fcm.serviceAccount.private_key");
        assertInvalid(api.post("/v1/apps", ADMIN_KEY,
                Map.of("id", Fixtures.unique("a"), "name", "x", "email", Map.of("from", "not an address"))), "email.from");
        assertInvalid(api.post("/v1/apps", ADMIN_KEY,
                Map.of("id", Fixtures.unique("a"), "name", "x", "webhook", Map.of("url", "ftp://x.example.com", "secret", "0123456789abcdef"))),
                "webhook.url");
        assertInvalid(api.post("/v1/apps", ADMIN_KEY, Map.of("id", Fixtures.unique("a"), "name", "x", "colour", "red")), "colour");
        assertInvalid(api.post("/v1/apps", ADMIN_KEY, Map.of("id", Fixtures.unique("a"), "name", 7)), "name");
    }

    @Test
    void refusesWebhooksIntoThePrivateNetwork() {
        for (String url : new String[]{"http://127.0.0.1:8080/hook", "http://localhost/hook", "http://10.1.2.3/hook",
                "http://192.168.0.10/hook", "http://169.254.169.254/latest/meta-data", "http://[::1]/hook",
                "http://100.64.0.1/hook", "http://0.0.0.0/hook", "http://[fd12::1]/hook", "http://[::ffff:127.0.0.1]/hook",
                "http://172.16.5.4/hook", "http://224.0.0.1/hook", "http://[64:ff9b::a00:1]/hook", "http://[2002:a00:1::]/hook",
                "http://198.18.0.1/hook", "http://[::10.0.0.1]/hook"}) {
            assertInvalid(api.post("/v1/apps", ADMIN_KEY, Map.of("id", Fixtures.unique("a"), "name", "x",
                    "webhook", Map.of("url", url, "secret", "0123456789abcdef"))), "webhook.url");
        }
    }

    @Test
    void patchesWithAMergePatchKeepingSecretsItWasNotGiven() {
        String id = Fixtures.unique("patch");
        assertThat(api.post("/v1/apps", ADMIN_KEY, Map.of("id", id, "name", "Before", "apns", apns(Fixtures.p8()),
                "email", Map.of("from", "a@example.com"))).status()).isEqualTo(201);

        Map<String, Object> patch = new HashMap<>();
        patch.put("name", "After");
        patch.put("apns", Map.of("environment", "production"));
        patch.put("email", null);
        Api.Response patched = api.patch("/v1/apps/" + id, ADMIN_KEY, patch);

        assertThat(patched.status()).as(patched.toString()).isEqualTo(200);
        JsonNode app = patched.json();
        assertThat(app.path("name").asText()).isEqualTo("After");
        assertThat(app.path("apns").path("environment").asText()).isEqualTo("production");
        assertThat(app.path("apns").path("configured").asBoolean()).isTrue();
        assertThat(app.path("email").isNull()).isTrue();
        assertThat(api.get("/v1/apps/" + id, ADMIN_KEY).json().path("name").asText()).isEqualTo("After");

        assertInvalid(api.patch("/v1/apps/" + id, ADMIN_KEY, Map.of("id", "other-id")), "id");
        assertInvalid(api.patch("/v1/apps/" + id, ADMIN_KEY, Map.of("apns", Map.of("privateKey", "garbage"))),
                "apns.privateKey");
        Api.Response asJson = api.send("PATCH", "/v1/apps/" + id, ADMIN_KEY, "application/json", "{\"syncBadges\":true}");
        assertThat(asJson.status()).isEqualTo(200);
        assertThat(asJson.json().path("syncBadges").asBoolean()).isTrue();
        assertProblem(api.patch("/v1/apps/no-such-app", ADMIN_KEY, Map.of("name", "x")), 404);
    }

    @Test
    void anAppKeyWithAdminScopeReachesOnlyItsOwnApp() {
        Fixtures.Tenant tenant = fixtures.tenant();
        String other = fixtures.app();
        String sendOnly = fixtures.key(tenant.app(), "live", "send");

        assertThat(api.get("/v1/apps/" + tenant.app(), tenant.key()).status()).isEqualTo(200);
        assertThat(api.patch("/v1/apps/" + tenant.app(), tenant.key(), Map.of("name", "Renamed")).status()).isEqualTo(200);
        assertProblem(api.get("/v1/apps/" + other, tenant.key()), 403);
        assertProblem(api.patch("/v1/apps/" + other, tenant.key(), Map.of("name", "x")), 403);
        assertProblem(api.get("/v1/apps/" + tenant.app(), sendOnly), 403);
        assertProblem(api.post("/v1/apps", tenant.key(), Map.of("id", Fixtures.unique("a"), "name", "x")), 403);
        assertProblem(api.get("/v1/apps/" + tenant.app(), tenant.userToken()), 403);
        assertProblem(api.get("/v1/apps/" + tenant.app(), null), 401);
        assertProblem(api.get("/v1/apps", tenant.key()), 403);
        assertProblem(api.get("/v1/apps/no-such-app", ADMIN_KEY), 404);
    }

    @Test
    void listsAppsForTheOperator() {
        String id = fixtures.app();
        Api.Response page = api.get("/v1/apps?limit=100", ADMIN_KEY);
        assertThat(page.status()).isEqualTo(200);
        assertThat(page.json().has("nextCursor")).isTrue();
    }
}
