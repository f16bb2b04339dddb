package dev.herald.limits;

import com.fasterxml.jackson.databind.JsonNode;
import dev.herald.support.Api;
import dev.herald.support.Fixtures;
import dev.herald.support.GatewayTest;
import io.micronaut.test.extensions.junit5.annotation.MicronautTest;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.time.Instant;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static dev.herald.support.Fixtures.apnsToken;
import static dev.herald.support.Fixtures.iosDevice;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/**
 * The cap on pushes per device per minute: past it a device's pushes end {@code suppressed} with
 * reason {@code device_limit} (the inbox still has them) and never reach the gateway; another device
 * is not affected; an app sets its own cap.
 */
@MicronautTest(transactional = false)
class DevicePushCapTest extends GatewayTest {

    private static final Duration DEADLINE = Duration.ofSeconds(30);

    @Override
    protected Map<String, String> moreProperties() {
        return Map.of("herald.limits.device-per-minute", "3");
    }

    @BeforeEach
    void notNearTheEndOfAMinute() {
        // the cap counts per UTC minute: start where the test's pushes all fall in one
        await().atMost(Duration.ofSeconds(40)).pollInterval(Duration.ofMillis(200))
                .until(() -> Instant.now().atOffset(ZoneOffset.UTC).getSecond() < 35);
    }

    private String iphone(Fixtures.Tenant t, String installationId) {
        String token = apnsToken();
        Api.Response r = api.put("/v1/devices/" + installationId, t.userToken(), iosDevice(t.app(), token));
        assertThat(r.status()).as(r.toString()).isIn(200, 201);
        return token;
    }

    /** The push delivery of each of {@code n} notifications sent one after another to one installation. */
    private List<JsonNode> sendEach(Fixtures.Tenant t, String installationId, int n) {
        List<String> ids = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            Api.Response accepted = api.post("/v1/notifications", t.key(),
                    Map.of("to", Map.of("devices", List.of(installationId)), "title", "Ping " + i));
            assertThat(accepted.status()).as(accepted.toString()).isEqualTo(202);
            ids.add(accepted.json().path("id").asText());
        }
        List<JsonNode> pushes = new ArrayList<>();
        for (String id : ids) {
            JsonNode[] push = new JsonNode[1];
            await().atMost(DEADLINE).until(() -> {
                JsonNode status = api.get("/v1/notifications/" + id, t.key()).json();
                for (JsonNode d : status.path("deliveries").path("items")) {
                    if ("push".equals(d.path("channel").asText()) && !"queued".equals(d.path("status").asText())) {
                        push[0] = d;
                        return true;
                    }
                }
                return false;
            });
            pushes.add(push[0]);
        }
        return pushes;
    }

    private static List<String> outcomes(List<JsonNode> pushes) {
        return pushes.stream().map(d -> d.path("status").asText() + "/" + d.path("reason").asText("")).toList();
    }

    @Test
    void aDevicePastItsCapGetsNoMorePushesThisMinuteAndOthersStillDo() {
        String flooded = "iphone-flooded-" + tenant.userId();
        String floodedToken = iphone(tenant, flooded);
        String quiet = "iphone-quiet-" + tenant.userId();
        String quietToken = iphone(tenant, quiet);

        List<String> seen = outcomes(sendEach(tenant, flooded, 5));

        assertThat(seen).containsExactlyInAnyOrder("sent/", "sent/", "sent/",
                "suppressed/device_limit", "suppressed/device_limit");
        assertThat(apns.receivedFor(floodedToken)).hasSize(3);
        assertThat(outcomes(sendEach(tenant, quiet, 1))).containsExactly("sent/");
        assertThat(apns.receivedFor(quietToken)).hasSize(1);
    }

    @Test
    void anAppSetsItsOwnCap() {
        Fixtures.Tenant strict = fixtures.tenant();
        configureGateways(strict.app());
        Api.Response patched = api.patch("/v1/apps/" + strict.app(), Fixtures.ADMIN_KEY,
                Map.of("limits", Map.of("devicePushesPerMinute", 1)));
        assertThat(patched.status()).as(patched.toString()).isEqualTo(200);
        assertThat(patched.json().path("limits").path("devicePushesPerMinute").asInt()).isEqualTo(1);
        String token = iphone(strict, "iphone-strict");

        assertThat(outcomes(sendEach(strict, "iphone-strict", 2))).containsExactlyInAnyOrder("sent/", "suppressed/device_limit");
        assertThat(apns.receivedFor(token)).hasSize(1);

        Fixtures.Tenant open = fixtures.tenant();
        configureGateways(open.app());
        assertThat(api.patch("/v1/apps/" + open.app(), Fixtures.ADMIN_KEY,
                Map.of("limits", Map.of("devicePushesPerMinute", 0))).status()).isEqualTo(200);
        iphone(open, "iphone-open");
        assertThat(outcomes(sendEach(open, "iphone-open", 5))).as("0: no cap").containsOnly("sent/");
    }
}
