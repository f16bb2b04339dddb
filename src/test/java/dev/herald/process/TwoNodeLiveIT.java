package dev.herald.process;

import com.fasterxml.jackson.databind.JsonNode;
import dev.herald.support.Api;
import dev.herald.support.Fixtures;
import dev.herald.support.SseStream;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.List;
import java.util.Map;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/**
 * Two Herald processes sharing one PostgreSQL and one Redis: a user holds a stream on node B, a
 * notification is accepted (and routed) by node A, and the event reaches the stream on B through Redis.
 * Node A sees the user as present; once the stream closes, neither does; when node B is killed with a
 * stream open, the user stops counting as present within 60 s.
 */
class TwoNodeLiveIT {

    private static final Duration DEADLINE = Duration.ofSeconds(20);

    @Test
    void aLiveEventReachesTheNodeThatHoldsTheStream() throws Exception {
        Map<String, String> env = new java.util.HashMap<>(HeraldProcess.sharedEnvironment("two-nodes-live"));
        // two or more events at once go to every node over the broadcast channel (100 by default); one alone
        // goes to the node Redis says holds the stream
        env.put("HERALD_LIVE_BROADCAST_FROM", "2");

        try (HeraldProcess a = HeraldProcess.start("live-a", env); HeraldProcess b = HeraldProcess.start("live-b", env)) {
            a.awaitHealthy(Duration.ofSeconds(30));
            b.awaitHealthy(Duration.ofSeconds(30));
            String app = Fixtures.unique("live");
            assertThat(a.api().post("/v1/apps", Fixtures.ADMIN_KEY, Map.of("id", app, "name", "Live")).status()).isEqualTo(201);
            String key = a.api().post("/v1/apps/" + app + "/keys", Fixtures.ADMIN_KEY,
                    Map.of("name", "k", "mode", "live", "scopes", List.of("send", "users"))).json().path("key").asText();
            String user = Fixtures.unique("user");
            String token = b.api().post("/v1/users/" + user + "/tokens", key, Map.of()).json().path("token").asText();

            try (SseStream stream = new SseStream(b.baseUrl(), "", token, null)) {
                assertThat(stream.status()).isEqualTo(200);
                stream.next("unread", DEADLINE);
                await().atMost(DEADLINE).until(() ->
                        a.api().get("/v1/users/" + user + "/presence", key).json().path("present").asBoolean());

                Api.Response accepted = a.api().post("/v1/notifications", key,
                        Map.of("to", Map.of("users", List.of(user)), "title", "Across nodes"));
                assertThat(accepted.status()).isEqualTo(202);
                JsonNode event = stream.next("notification", DEADLINE).json();
                assertThat(event.path("title").asText()).isEqualTo("Across nodes");
                assertThat(event.path("notificationId").asText()).isEqualTo(accepted.json().path("id").asText());
            }
            await().atMost(DEADLINE).until(() ->
                    !a.api().get("/v1/users/" + user + "/presence", key).json().path("present").asBoolean());

            // a notification to more users than one routing chunk: its live events for the users present
            // (two, one on each node) go to every node over the broadcast channel; each node passes on those
            // of the users it holds
            List<String> many = new java.util.ArrayList<>();
            for (int i = 0; i < 1_200; i++) {
                many.add(String.format("%s-many-%04d", app, i));
            }
            String onA = many.get(10);
            String onB = many.get(1_100);
            try (SseStream streamA = new SseStream(a.baseUrl(), "", a.api().post("/v1/users/" + onA + "/tokens", key, Map.of())
                    .json().path("token").asText(), null);
                 SseStream streamB = new SseStream(b.baseUrl(), "", b.api().post("/v1/users/" + onB + "/tokens", key, Map.of())
                         .json().path("token").asText(), null)) {
                streamA.next("unread", DEADLINE);
                streamB.next("unread", DEADLINE);
                Api.Response fanOut = a.api().post("/v1/notifications", key, Map.of("to", Map.of("users", many), "title", "To many"));
                assertThat(fanOut.status()).isEqualTo(202);
                for (SseStream stream : List.of(streamA, streamB)) {
                    SseStream.Event event = stream.next("notification", DEADLINE);
                    assertThat(event.json().path("title").asText()).isEqualTo("To many");
                    assertThat(event.json().path("notificationId").asText()).isEqualTo(fanOut.json().path("id").asText());
                    assertThat(event.id()).startsWith("inb_");
                    // then the unread count, once stored (a stream opened just before may see the item again, same id)
                    SseStream.Event after = stream.nextNotPing(DEADLINE);
                    while (after.name().equals("notification")) {
                        assertThat(after.id()).isEqualTo(event.id());
                        after = stream.nextNotPing(DEADLINE);
                    }
                    assertThat(after.name()).isEqualTo("unread");
                }
            }

            // a node that dies with a stream open leaves the user present for at most 60 s
            SseStream orphan = new SseStream(b.baseUrl(), "", token, null);
            orphan.next("unread", DEADLINE);
            await().atMost(DEADLINE).until(() ->
                    a.api().get("/v1/users/" + user + "/presence", key).json().path("present").asBoolean());
            long killed = System.nanoTime();
            b.kill();
            await().atMost(Duration.ofSeconds(75)).pollInterval(Duration.ofMillis(250)).until(() ->
                    !a.api().get("/v1/users/" + user + "/presence", key).json().path("present").asBoolean());
            Duration gone = Duration.ofNanos(System.nanoTime() - killed);
            System.out.println("presence of a user on a killed node ended after " + gone.toSeconds() + " s");
            assertThat(gone).isLessThanOrEqualTo(Duration.ofSeconds(61));
            orphan.close();
        }
    }
}
