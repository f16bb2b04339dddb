package dev.herald.redis;

import com.fasterxml.jackson.databind.JsonNode;
import dev.herald.live.LiveHub;
import dev.herald.support.Api;
import dev.herald.support.Fixtures;
import dev.herald.support.GatewayTest;
import dev.herald.support.RedisCluster;
import dev.herald.support.SseStream;
import io.micronaut.test.extensions.junit5.annotation.MicronautTest;
import jakarta.inject.Inject;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/**
 * Herald on a real Redis Cluster (three primaries): presence, the live stream, a live event relayed to
 * this node through a channel published on another cluster node, and the queue intake all work; each
 * user's keys hash to one slot.
 */
@MicronautTest(transactional = false)
class RedisClusterTest extends GatewayTest {

    private static final Duration DEADLINE = Duration.ofSeconds(20);

    private RedisCluster cluster;

    @Inject
    Redis redis;

    @Inject
    LiveHub live;

    @Override
    protected Map<String, String> moreProperties() {
        cluster = new RedisCluster(Path.of("target", "redis-cluster-" + System.nanoTime()));
        return Map.of("herald.redis-uri", cluster.uri());
    }

    @AfterAll
    void stopCluster() {
        cluster.close();
    }

    private boolean present(String user) {
        return api.get("/v1/users/" + user + "/presence", tenant.key()).json().path("present").asBoolean();
    }

    @Test
    void presenceStreamsAndHandOffWorkOnACluster() throws Exception {
        assertThat(redis.isCluster()).isTrue();
        try (SseStream stream = new SseStream(server.getURL().toString(), "", tenant.userToken(), null)) {
            assertThat(stream.status()).isEqualTo(200);
            stream.next("unread", DEADLINE);
            await().atMost(DEADLINE).until(() -> present(tenant.userId()));

            String streams = "herald:{u:" + tenant.userId() + "}:streams";
            Long slot = cluster.onNode(0, c -> c.clusterKeyslot(streams));
            Long seenSlot = cluster.onNode(0, c -> c.clusterKeyslot("herald:{u:" + tenant.userId() + "}:seen"));
            assertThat(seenSlot).isEqualTo(slot);
            assertThat(redis.async().zcard(streams).get()).isEqualTo(1L);

            Api.Response accepted = api.post("/v1/notifications", tenant.key(),
                    Map.of("to", Map.of("users", List.of(tenant.userId())), "title", "Over a cluster"));
            assertThat(accepted.status()).isEqualTo(202);
            assertThat(stream.next("notification", DEADLINE).json().path("title").asText()).isEqualTo("Over a cluster");

            // another node of Herald relays through a channel it publishes on whichever cluster node it is connected to
            for (int node = 0; node < 3; node++) {
                String message = Api.JSON.writeValueAsString(Map.of("userId", tenant.userId(), "name", "notification",
                        "data", "{\"title\":\"relayed via node " + node + "\"}"));
                cluster.onNode(node, c -> c.publish("herald:node:" + live.node(), message));
                JsonNode relayed = stream.next("notification", DEADLINE).json();
                assertThat(relayed.path("title").asText()).isEqualTo("relayed via node " + node);
            }
        }
        await().atMost(DEADLINE).until(() -> !present(tenant.userId()));
    }

    @Test
    void thePerDeviceCapCountsOnACluster() {
        assertThat(api.patch("/v1/apps/" + tenant.app(), Fixtures.ADMIN_KEY,
                Map.of("limits", Map.of("devicePushesPerMinute", 2))).status()).isEqualTo(200);
        // three devices, counted in whichever of the hashes (and cluster nodes) their ids fall
        Map<String, String> tokens = new HashMap<>();
        for (int i = 0; i < 3; i++) {
            String installation = "capped-" + i + "-" + tenant.userId();
            String token = Fixtures.apnsToken();
            assertThat(api.put("/v1/devices/" + installation, tenant.userToken(), Fixtures.iosDevice(tenant.app(), token))
                    .status()).isEqualTo(201);
            tokens.put(installation, token);
        }
        // the cap counts per UTC minute: start where the test's pushes all fall in one
        await().atMost(Duration.ofSeconds(40)).pollInterval(Duration.ofMillis(200))
                .until(() -> java.time.Instant.now().atOffset(java.time.ZoneOffset.UTC).getSecond() < 40);
        List<String> ids = new java.util.ArrayList<>();
        for (int n = 0; n < 3; n++) {
            Api.Response accepted = api.post("/v1/notifications", tenant.key(),
                    Map.of("to", Map.of("devices", List.copyOf(tokens.keySet())), "title", "Capped " + n));
            assertThat(accepted.status()).isEqualTo(202);
            ids.add(accepted.json().path("id").asText());
        }
        await().atMost(DEADLINE).until(() -> ids.stream().allMatch(id ->
                "done".equals(api.get("/v1/notifications/" + id, tenant.key()).json().path("status").asText())));

        long limited = ids.stream().mapToLong(id -> api.get("/v1/notifications/" + id, tenant.key()).json()
                .path("counts").path("suppressed").asLong()).sum();
        assertThat(limited).as("the third push to each of 3 devices").isEqualTo(3);
        tokens.values().forEach(token -> assertThat(apns.receivedFor(token)).hasSize(2));
    }

    @Test
    void theQueueIntakeReadsFromACluster() {
        String installation = "iphone-cluster-" + tenant.userId();
        String token = Fixtures.apnsToken();
        assertThat(api.put("/v1/devices/" + installation, tenant.userToken(), Fixtures.iosDevice(tenant.app(), token))
                .status()).isEqualTo(201);
        Map<String, String> entry = new HashMap<>();
        entry.put("app", tenant.app());
        entry.put("key", tenant.key());
        entry.put("body", "{\"to\":{\"devices\":[\"" + installation + "\"]},\"title\":\"Queued on a cluster\"}");
        try (Redis.Dedicated c = redis.connect()) {
            c.sync().xadd("herald:requests", entry);
            await().atMost(DEADLINE).until(() -> apns.receivedFor(token).size() == 1);
            await().atMost(DEADLINE).until(() -> c.sync().xpending("herald:requests", "herald").getCount() == 0);
        }
    }
}
