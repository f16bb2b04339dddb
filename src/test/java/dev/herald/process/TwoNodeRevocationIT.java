package dev.herald.process;

import dev.herald.support.Api;
import dev.herald.support.Fixtures;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.List;
import java.util.Map;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/**
 * Two Herald processes sharing one PostgreSQL and one Redis agree: a key made on one works on the
 * other, a user token minted by one is accepted by the other, and a key revoked on one is refused
 * by the other within 1 s.
 */
class TwoNodeRevocationIT {

    @Test
    void aKeyRevokedOnOneNodeIsRefusedByTheOtherWithinASecond() throws Exception {
        Map<String, String> env = HeraldProcess.sharedEnvironment("two-nodes");

        try (HeraldProcess a = HeraldProcess.start("node-a", env); HeraldProcess b = HeraldProcess.start("node-b", env)) {
            a.awaitHealthy(Duration.ofSeconds(30));
            b.awaitHealthy(Duration.ofSeconds(30));
            assertThat(a.log()).contains("PostgreSQL: external").contains("Redis: external");

            String app = Fixtures.unique("shared");
            assertThat(a.api().post("/v1/apps", Fixtures.ADMIN_KEY, Map.of("id", app, "name", "Shared")).status())
                    .isEqualTo(201);
            Api.Response key = a.api().post("/v1/apps/" + app + "/keys", Fixtures.ADMIN_KEY,
                    Map.of("name", "k", "mode", "live", "scopes", List.of("users")));
            String secret = key.json().path("key").asText();

            Api.Response minted = b.api().post("/v1/users/u-1/tokens", secret, Map.of());
            assertThat(minted.status()).isEqualTo(201);
            assertThat(a.api().get("/v1/devices", minted.json().path("token").asText()).status())
                    .as("a token minted on node B is accepted on node A").isEqualTo(200);

            long revoked = System.nanoTime();
            assertThat(a.api().delete("/v1/apps/" + app + "/keys/" + key.json().path("id").asText(), Fixtures.ADMIN_KEY)
                    .status()).isEqualTo(204);
            await().atMost(Duration.ofSeconds(1)).pollInterval(Duration.ofMillis(10))
                    .until(() -> b.api().post("/v1/users/u-1/tokens", secret, Map.of()).status() == 401);
            Duration took = Duration.ofNanos(System.nanoTime() - revoked);
            System.out.println("revocation reached the other node after " + took.toMillis() + " ms");
            assertThat(took).isLessThan(Duration.ofSeconds(1));
            assertThat(a.api().post("/v1/users/u-1/tokens", secret, Map.of()).status()).isEqualTo(401);
        }
    }
}
