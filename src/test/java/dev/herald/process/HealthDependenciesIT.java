package dev.herald.process;

import dev.herald.support.Fixtures;
import io.zonky.test.db.postgres.embedded.EmbeddedPostgres;
import org.junit.jupiter.api.Test;
import redis.embedded.RedisServer;

import java.io.IOException;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/**
 * Readiness follows PostgreSQL and Redis (a node without them gets no traffic); liveness never
 * depends on them (a node is not restarted for a dependency's outage), and the node recovers by
 * itself when they come back.
 */
class HealthDependenciesIT {

    @Test
    void readinessFollowsTheDatabaseAndRedisWhileLivenessStaysUp() throws Exception {
        Path dir = Files.createTempDirectory(Path.of("target"), "health-it");
        int redisPort = freePort();
        RedisServer redis = RedisServer.builder().port(redisPort).bind("127.0.0.1").setting("save \"\"").build();
        redis.start();
        EmbeddedPostgres postgres = EmbeddedPostgres.builder().setDataDirectory(dir.resolve("pg"))
                .setCleanDataDirectory(true).start();
        Map<String, String> env = Map.of("DATABASE_URL", postgres.getJdbcUrl("postgres", "postgres"),
                "DATABASE_USER", "postgres", "REDIS_URI", "redis://127.0.0.1:" + redisPort,
                "HERALD_ADMIN_KEY", Fixtures.ADMIN_KEY, "HERALD_MASTER_KEY", HeraldProcess.MASTER_KEY,
                "HERALD_DATA_DIR", dir.resolve("unused").toString());
        try (HeraldProcess herald = HeraldProcess.start("health", env)) {
            herald.awaitHealthy(Duration.ofSeconds(30));
            var api = herald.api();
            assertThat(api.post("/v1/apps", Fixtures.ADMIN_KEY, Map.of("id", "health-app", "name", "x")).status()).isEqualTo(201);
            String key = api.post("/v1/apps/health-app/keys", Fixtures.ADMIN_KEY,
                    Map.of("name", "k", "mode", "live", "scopes", java.util.List.of("users", "send"))).json().path("key").asText();

            redis.stop();
            await().atMost(Duration.ofSeconds(15)).until(() -> herald.api().get("/health", null).status() == 503);
            assertThat(herald.api().get("/health/liveness", null).status()).isEqualTo(200);
            assertThat(herald.api().get("/v1/apps", Fixtures.ADMIN_KEY).status())
                    .as("what needs only PostgreSQL keeps working").isEqualTo(200);
            // presence is unknown: users count as away, notifications are still accepted and routed
            var accepted = api.post("/v1/notifications", key, Map.of("to", Map.of("users", java.util.List.of("u")),
                    "title", "While Redis is away"));
            assertThat(accepted.status()).as(accepted.toString()).isEqualTo(202);
            String id = accepted.json().path("id").asText();
            await().atMost(Duration.ofSeconds(20)).untilAsserted(() -> {
                var status = api.get("/v1/notifications/" + id, key).json();
                assertThat(status.path("status").asText()).isEqualTo("done");
                boolean away = false;
                for (var d : status.path("deliveries").path("items")) {
                    away |= "live".equals(d.path("channel").asText()) && "away".equals(d.path("reason").asText());
                }
                assertThat(away).as(status.toString()).isTrue();
            });
            dev.herald.support.Problems.assertProblem(api.get("/v1/users/u/presence", key), 503);

            redis.start();
            await().atMost(Duration.ofSeconds(30)).until(() -> herald.api().get("/health", null).status() == 200);

            String userToken = api.post("/v1/users/u/tokens", key, Map.of()).json().path("token").asText();

            postgres.close();
            await().atMost(Duration.ofSeconds(20)).until(() -> herald.api().get("/health", null).status() == 503);
            assertThat(herald.api().get("/health/liveness", null).status()).isEqualTo(200);
            assertThat(herald.api().get("/health", null).contentType()).startsWith("application/json");
            var refused = herald.api().get("/v1/apps", Fixtures.ADMIN_KEY);
            dev.herald.support.Problems.assertProblem(refused, 503);
            assertThat(refused.headers().firstValue("Retry-After")).isPresent();
            var registration = api.put("/v1/devices/during-outage", userToken,
                    Fixtures.androidDevice("health-app", Fixtures.fcmToken()));
            dev.herald.support.Problems.assertProblem(registration, 503);
            assertThat(registration.headers().firstValue("Retry-After")).isPresent();
        } finally {
            redis.stop();
            postgres.close();
        }
    }

    private static int freePort() throws IOException {
        try (ServerSocket socket = new ServerSocket(0)) {
            return socket.getLocalPort();
        }
    }
}
