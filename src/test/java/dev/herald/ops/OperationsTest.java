package dev.herald.ops;

import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.read.ListAppender;
import dev.herald.support.Api;
import dev.herald.support.Fixtures;
import dev.herald.support.HeraldTest;
import io.micronaut.test.extensions.junit5.annotation.MicronautTest;
import org.junit.jupiter.api.Test;
import org.slf4j.LoggerFactory;

import java.util.List;
import java.util.Map;

import static dev.herald.support.Fixtures.ADMIN_KEY;
import static org.assertj.core.api.Assertions.assertThat;

@MicronautTest(transactional = false)
class OperationsTest extends HeraldTest {

    @Test
    void healthSaysUpWithoutACredentialAndTellsNoInternals() {
        Api.Response health = api.get("/health", null);
        assertThat(health.status()).isEqualTo(200);
        assertThat(health.json().path("status").asText()).isEqualTo("UP");
        assertThat(health.body()).doesNotContain("jdbc", "redis://", "postgres");
        Api.Response liveness = api.get("/health/liveness", null);
        assertThat(liveness.status()).isEqualTo(200);
        assertThat(api.get("/health/readiness", null).status()).isEqualTo(200);
    }

    @Test
    void metricsArePrometheusTextWithBoundedTags() {
        Fixtures.Tenant tenant = fixtures.tenant();
        String token = Fixtures.apnsToken();
        String created = "herald_devices_registered_total{outcome=\"created\",platform=\"ios\"}";
        double before = Api.metric(api.get("/metrics", null).body(), created).orElse(0);
        api.put("/v1/devices/" + Fixtures.unique("m"), tenant.userToken(), Fixtures.iosDevice(tenant.app(), token));

        Api.Response metrics = api.get("/metrics", null);

        assertThat(metrics.status()).isEqualTo(200);
        assertThat(metrics.contentType()).startsWith("text/plain");
        assertThat(Api.metric(metrics.body(), created).orElse(0)).as(created).isGreaterThanOrEqualTo(before + 1);
        assertThat(metrics.body()).contains("http_server_requests_seconds_count")
                .contains("jvm_memory_used_bytes")
                .doesNotContain(token).doesNotContain(tenant.userId());
    }

    @Test
    void openApiDescribesEveryEndpoint() {
        Api.Response openapi = api.get("/openapi.yml", null);
        assertThat(openapi.status()).isEqualTo(200);
        assertThat(openapi.body()).contains("openapi: 3", "/v1/apps:", "/v1/apps/{appId}:", "/v1/apps/{appId}/keys:",
                "/v1/apps/{appId}/keys/{keyId}:", "/v1/users/{userId}/tokens:", "/v1/devices:",
                "/v1/devices/{installationId}:", "/metrics:");
        assertThat(openapi.body()).as("request bodies are described, not shown as bytes")
                .contains("#/components/schemas/AppRequest", "#/components/schemas/DeviceRegistration")
                .doesNotContain("format: byte");
    }

    @Test
    void logsNeverHoldATokenKeyOrSecret() {
        Logger root = (Logger) LoggerFactory.getLogger(org.slf4j.Logger.ROOT_LOGGER_NAME);
        ListAppender<ILoggingEvent> captured = new ListAppender<>();
        captured.start();
        root.addAppender(captured);
        ch.qos.logback.classic.Level level = ((Logger) LoggerFactory.getLogger("dev.herald")).getLevel();
        ((Logger) LoggerFactory.getLogger("dev.herald")).setLevel(ch.qos.logback.classic.Level.DEBUG);
        try {
            String p8 = Fixtures.p8();
            String app = Fixtures.unique("logs");
            api.post("/v1/apps", ADMIN_KEY, Map.of("id", app, "name", "x", "apns", Map.of("teamId", "TEAM123456",
                    "keyId", "KEY1234567", "privateKey", p8, "bundleId", "com.example.x", "environment", "sandbox")));
            String key = fixtures.key(app, "live", "users");
            String userToken = fixtures.userToken(key, "log-user");
            String pushToken = Fixtures.apnsToken();
            api.put("/v1/devices/log-device", userToken, Fixtures.iosDevice(app, pushToken));
            api.put("/v1/devices/log-device", userToken, Fixtures.iosDevice(app, "not hex"));
            api.get("/v1/devices", "hk_live_wrongwrongwrong");

            List<String> lines = captured.list.stream().map(e -> e.getFormattedMessage()
                    + (e.getThrowableProxy() == null ? "" : e.getThrowableProxy().getMessage())).toList();
            for (String secret : new String[]{key, userToken, pushToken, p8.substring(30, 90), ADMIN_KEY}) {
                assertThat(lines).noneMatch(line -> line.contains(secret));
            }
        } finally {
            root.detachAppender(captured);
            ((Logger) LoggerFactory.getLogger("dev.herald")).setLevel(level);
        }
    }
}
