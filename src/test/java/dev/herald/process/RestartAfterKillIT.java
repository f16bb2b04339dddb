package dev.herald.process;

import dev.herald.support.Api;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * The README's run command on an empty data folder answers /health within 20 s, and again after
 * the process was killed with kill -9 (leaving its embedded PostgreSQL and Redis running), with
 * its data intact.
 */
class RestartAfterKillIT {

    @Test
    void comesBackAfterKillDashNineWithItsData() throws Exception {
        Path dataDir = Path.of(System.getProperty("herald.data-dir", "target/it-data")).resolve("restart");
        HeraldProcess.deleteRecursively(dataDir);
        Map<String, String> env = Map.of("HERALD_DATA_DIR", dataDir.toString());

        String adminKey;
        String appId = "survivor";
        try (HeraldProcess first = HeraldProcess.start("first", env)) {
            Duration firstStart = first.awaitHealthy(Duration.ofSeconds(20));
            System.out.println("first start healthy after " + firstStart.toMillis() + " ms");
            adminKey = first.log().lines().filter(l -> l.contains("Admin key generated"))
                    .map(l -> l.replaceAll(".*(hk_admin_[A-Za-z0-9]+).*", "$1")).findFirst().orElseThrow();
            Api.Response created = first.api().post("/v1/apps", adminKey, Map.of("id", appId, "name", "Survivor"));
            assertThat(created.status()).as(created.toString()).isEqualTo(201);
            first.kill();
        }

        try (HeraldProcess second = HeraldProcess.start("second", env)) {
            Duration secondStart = second.awaitHealthy(Duration.ofSeconds(20));
            System.out.println("start after kill -9 healthy after " + secondStart.toMillis() + " ms");
            Api.Response app = second.api().get("/v1/apps/" + appId, adminKey);
            assertThat(app.status()).as(app.toString()).isEqualTo(200);
            assertThat(app.json().path("name").asText()).isEqualTo("Survivor");
            assertThat(second.log()).as("the servers the killed process left running were stopped, not fought")
                    .contains("Stopping a postgres server").contains("Stopping a redis server");
            assertThat(second.log()).doesNotContain("Admin key generated")
                    .doesNotContain(adminKey);
        }
    }
}
