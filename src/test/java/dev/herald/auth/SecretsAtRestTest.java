package dev.herald.auth;

import dev.herald.apps.AppStore;
import dev.herald.support.Api;
import dev.herald.support.Fixtures;
import dev.herald.support.GatewayTest;
import dev.herald.support.Sql;
import io.micronaut.test.extensions.junit5.annotation.MicronautTest;
import jakarta.inject.Inject;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.List;
import java.util.Map;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/**
 * What PostgreSQL holds of an app's secrets is sealed: no APNs key, service account or webhook secret in
 * clear in its row, while pushes still go out with them; a secret stored in clear before sealing
 * existed still works and is sealed on the next pass.
 */
@MicronautTest(transactional = false)
class SecretsAtRestTest extends GatewayTest {

    @Inject
    Sql sql;

    @Inject
    AppStore apps;

    @Override
    protected Map<String, String> moreProperties() {
        return Map.of("herald.webhook-allow-private", "true");
    }

    private String row(String app) {
        return sql.string("SELECT concat_ws(' ', apns::text, fcm::text, email::text, webhook::text) FROM apps WHERE id = ?", app);
    }

    @Test
    void theDatabaseHoldsNoSecretInClearAndPushesStillGoOut() {
        assertThat(api.patch("/v1/apps/" + tenant.app(), Fixtures.ADMIN_KEY,
                Map.of("webhook", Map.of("url", "http://127.0.0.1:9/hook", "secret", "whsec-do-not-store-me"))).status())
                .isEqualTo(200);
        String stored = row(tenant.app());
        assertThat(stored).contains("enc:v1:").doesNotContain("PRIVATE KEY").doesNotContain("private_key")
                .doesNotContain("whsec-do-not-store-me").doesNotContain(p8.substring(40, 80));
        assertThat(stored).as("what is not secret stays readable").contains(TEAM).contains(BUNDLE);
        assertThat(sql.count("SELECT count(*) FROM settings WHERE name = 'jwt_secret' AND value NOT LIKE 'enc:v1:%'"))
                .as("a generated JWT secret is sealed too").isZero();

        String token = Fixtures.apnsToken();
        String android = Fixtures.fcmToken();
        assertThat(api.put("/v1/devices/sealed-ios-" + tenant.userId(), tenant.userToken(),
                Fixtures.iosDevice(tenant.app(), token)).status()).isEqualTo(201);
        assertThat(api.put("/v1/devices/sealed-android-" + tenant.userId(), tenant.userToken(),
                Fixtures.androidDevice(tenant.app(), android)).status()).isEqualTo(201);
        assertThat(api.post("/v1/notifications", tenant.key(), Map.of("to", Map.of("users", List.of(tenant.userId())),
                "title", "Sealed")).status()).isEqualTo(202);
        await().atMost(Duration.ofSeconds(20)).until(() -> apns.receivedFor(token).size() == 1
                && fcm.sends().stream().anyMatch(s -> android.equals(s.body().at("/message/token").asText())));
    }

    @Test
    void aSecretStoredInClearStillWorksAndIsSealedOnTheNextPass() {
        sql.update("UPDATE apps SET webhook = '{\"url\": \"http://127.0.0.1:9/hook\", \"secret\": \"whsec-from-before\"}'"
                + " WHERE id = ?", tenant.app());
        assertThat(apps.find(tenant.app()).orElseThrow().document().path("webhook").path("secret").asText())
                .isEqualTo("whsec-from-before");
        assertThat(apps.sealAgain()).isGreaterThanOrEqualTo(1);
        assertThat(row(tenant.app())).doesNotContain("whsec-from-before").contains("enc:v1:");
        assertThat(apps.find(tenant.app()).orElseThrow().document().path("webhook").path("secret").asText())
                .isEqualTo("whsec-from-before");
        Api.Response shown = api.get("/v1/apps/" + tenant.app(), Fixtures.ADMIN_KEY);
        assertThat(shown.body()).doesNotContain("whsec-from-before").doesNotContain("enc:v1:");
    }
}
