package dev.herald.process;

import dev.herald.support.Fixtures;
import dev.herald.support.SseStream;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.List;
import java.util.Map;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * On SIGTERM a node tells its streams to reconnect (to another node), each after its own random delay
 * of 1 to 10 s, so that the reconnects of a draining node are spread out.
 */
class StreamShutdownIT {

    @Test
    void streamsAreToldToReconnectWithSpreadOutDelaysOnShutdown() throws Exception {
        Map<String, String> env = HeraldProcess.sharedEnvironment("stream-shutdown");
        HeraldProcess node = HeraldProcess.start("shutdown", env);
        try {
            node.awaitHealthy(Duration.ofSeconds(30));
            String app = Fixtures.unique("drain");
            assertThat(node.api().post("/v1/apps", Fixtures.ADMIN_KEY, Map.of("id", app, "name", "Drain")).status())
                    .isEqualTo(201);
            String key = node.api().post("/v1/apps/" + app + "/keys", Fixtures.ADMIN_KEY,
                    Map.of("name", "k", "mode", "live", "scopes", List.of("users"))).json().path("key").asText();
            String token = node.api().post("/v1/users/drained/tokens", key, Map.of()).json().path("token").asText();
            try (SseStream stream = new SseStream(node.baseUrl(), "", token, null)) {
                stream.next("unread", Duration.ofSeconds(20));
                Thread stopper = new Thread(() -> {
                    try {
                        node.close();
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                    }
                });
                stopper.start();
                SseStream.Event reconnect = stream.next("reconnect", Duration.ofSeconds(20));
                assertThat(Long.parseLong(reconnect.retry())).isBetween(1_000L, 10_000L);
                stopper.join(30_000);
            }
        } finally {
            node.close();
        }
    }
}
