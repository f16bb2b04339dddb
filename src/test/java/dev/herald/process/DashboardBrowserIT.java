package dev.herald.process;

import com.fasterxml.jackson.databind.JsonNode;
import dev.herald.support.Api;
import dev.herald.support.Fixtures;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.EnabledIf;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/**
 * The dashboard in a real browser: Debian's headless Chromium driven by Playwright
 * ({@code src/test/browser/dashboard-check.mjs}) against a running Herald. The page loads without a
 * credential, signs in with the admin key, charts the deliveries this test produced with exactly their
 * counts, and logs no console error. Runs where Chromium and the script's npm packages are installed
 * ({@code .ci/run} installs both); skipped on a machine with only a JDK.
 */
@EnabledIf("browserInstalled")
class DashboardBrowserIT {

    private static final Path SCRIPT_DIR = Path.of("src/test/browser");
    private static final Path CHROMIUM = Path.of(System.getenv().getOrDefault("CHROMIUM", "/usr/bin/chromium"));

    static boolean browserInstalled() {
        return Files.isExecutable(CHROMIUM) && Files.isDirectory(SCRIPT_DIR.resolve("node_modules/playwright-core"));
    }

    @Test
    void theDashboardChartsTheCountsATestProduced() throws Exception {
        HeraldProcess node = HeraldProcess.start("dashboard", HeraldProcess.sharedEnvironment("dashboard"));
        try {
            node.awaitHealthy(Duration.ofSeconds(30));
            Api api = node.api();
            String app = Fixtures.unique("dash");
            assertThat(api.post("/v1/apps", Fixtures.ADMIN_KEY, Map.of("id", app, "name", "Dashboard")).status()).isEqualTo(201);
            // a test key: everything runs, and pushes end 'simulated' without a gateway
            String key = api.post("/v1/apps/" + app + "/keys", Fixtures.ADMIN_KEY,
                    Map.of("name", "k", "mode", "test", "scopes", List.of("send", "users"))).json().path("key").asText();
            String user = "dash-user";
            String token = api.post("/v1/users/" + user + "/tokens", key, Map.of()).json().path("token").asText();
            for (int i = 0; i < 2; i++) {
                Api.Response device = api.put("/v1/devices/dash-phone-" + i, token,
                        Fixtures.iosDevice(app, Fixtures.apnsToken()));
                assertThat(device.status()).as(device.toString()).isIn(200, 201);
            }
            for (int i = 0; i < 3; i++) {
                Api.Response sent = api.post("/v1/notifications", key, Map.of("to", Map.of("users", List.of(user)),
                        "title", "Charted " + i));
                assertThat(sent.status()).as(sent.toString()).isEqualTo(202);
            }
            await().atMost(Duration.ofSeconds(60)).until(() -> totals(api.get("/v1/stats?app=" + app, Fixtures.ADMIN_KEY)
                    .json()).getOrDefault("push/simulated", 0L) == 6L);

            ProcessBuilder browser = new ProcessBuilder("node", "dashboard-check.mjs", node.baseUrl(), Fixtures.ADMIN_KEY, app)
                    .directory(SCRIPT_DIR.toFile()).redirectErrorStream(true);
            browser.environment().put("CHROMIUM", CHROMIUM.toString());
            Process run = browser.start();
            assertThat(run.waitFor(120, TimeUnit.SECONDS)).as("the browser finished").isTrue();
            String output = new String(run.getInputStream().readAllBytes(), StandardCharsets.UTF_8).trim();
            assertThat(run.exitValue()).as(output).isZero();
            System.out.println("the dashboard as Chromium showed it: " + output);
            JsonNode seen = Api.JSON.readTree(output.substring(output.lastIndexOf("\n{") + 1));

            assertThat(seen.path("problems")).as("console errors").isEmpty();
            assertThat(seen.path("who").asText()).isEqualTo("App " + app);
            assertThat(seen.path("chart").path("width").asDouble()).isGreaterThan(100);
            assertThat(seen.path("chart").path("buckets").asInt()).as("24 hourly buckets").isBetween(24, 25);
            assertThat(seen.path("chart").path("totals").path("push/simulated").asLong()).isEqualTo(6);
            assertThat(seen.path("chart").path("totals").path("inApp/sent").asLong()).isEqualTo(3);
            assertThat(seen.path("table").path("push/simulated").asLong()).isEqualTo(6);
            assertThat(seen.path("table").path("inApp/sent").asLong()).isEqualTo(3);
        } finally {
            node.close();
        }
    }

    private static Map<String, Long> totals(JsonNode stats) {
        Map<String, Long> totals = new HashMap<>();
        stats.path("buckets").forEach(b -> totals.merge(b.path("channel").asText() + "/" + b.path("status").asText(),
                b.path("count").asLong(), Long::sum));
        return totals;
    }
}
