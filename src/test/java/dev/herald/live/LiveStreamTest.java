package dev.herald.live;

import com.fasterxml.jackson.databind.JsonNode;
import dev.herald.support.Api;
import dev.herald.support.FakeFcm;
import dev.herald.support.Fixtures;
import dev.herald.support.GatewayTest;
import dev.herald.support.MockApns;
import dev.herald.support.SseStream;
import io.micronaut.test.extensions.junit5.annotation.MicronautTest;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static dev.herald.support.Fixtures.apnsToken;
import static dev.herald.support.Fixtures.iosDevice;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

/**
 * Live streams over real SSE connections, presence in the real (embedded) Redis, and routing by
 * presence: a present user gets the notification on their stream instead of a push.
 */
@MicronautTest(transactional = false)
class LiveStreamTest extends GatewayTest {

    private static final Duration DEADLINE = Duration.ofSeconds(20);

    @Override
    protected Map<String, String> moreProperties() {
        // a client that stops reading fills its connection's buffers soon: the kernel's send buffer is kept
        // small (not grown to megabytes on loopback), and the events waiting beyond it are limited to 64 KiB
        return Map.of("herald.stream.ping", "1s", "herald.live.ack-timeout", "1s", "herald.stream.max-pending", "65536",
                "micronaut.server.netty.child-options.SO_SNDBUF", "16384");
    }

    /** An open stream to this test's Herald. */
    final class Listener implements AutoCloseable {
        final int status;
        private final SseStream stream;

        Listener(String query, String bearer, String lastEventId) throws Exception {
            stream = new SseStream(server.getURL().toString(), query, bearer, lastEventId);
            status = stream.status();
        }

        SseStream.Event next(String name) throws InterruptedException {
            return stream.next(name, DEADLINE);
        }

        @Override
        public void close() {
            stream.close();
        }
    }

    private static JsonNode delivery(JsonNode status, String channel) {
        for (JsonNode d : status.path("deliveries").path("items")) {
            if (channel.equals(d.path("channel").asText())) {
                return d;
            }
        }
        throw new AssertionError("no " + channel + " delivery in " + status);
    }

    private static Map<String, Object> toUser(String user, String title) {
        Map<String, Object> body = new LinkedHashMap<>();
        body.put("to", Map.of("users", List.of(user)));
        body.put("title", title);
        return body;
    }

    private JsonNode presence(String user) {
        Api.Response r = api.get("/v1/users/" + user + "/presence", tenant.key());
        assertThat(r.status()).as(r.toString()).isEqualTo(200);
        return r.json();
    }

    @Test
    void presentUserGetsTheNotificationLiveInsteadOfAPushAndMissedOnesAreReplayed() throws Exception {
        String token = apnsToken();
        assertThat(api.put("/v1/devices/iphone-" + token.substring(0, 8), tenant.userToken(),
                iosDevice(tenant.app(), token)).status()).isIn(200, 201);
        assertThat(presence(tenant.userId()).path("present").asBoolean()).isFalse();

        String firstId;
        try (Listener stream = new Listener("", tenant.userToken(), null)) {
            assertThat(stream.status).isEqualTo(200);
            assertThat(stream.next("unread").json().path("unread").asLong()).isZero();
            JsonNode here = presence(tenant.userId());
            assertThat(here.path("present").asBoolean()).isTrue();
            assertThat(here.path("connections").asLong()).isEqualTo(1);

            String id = sendNotification(toUser(tenant.userId(), "Live one"));
            SseStream.Event event = stream.next("notification");
            JsonNode item = event.json();
            assertThat(item.path("notificationId").asText()).isEqualTo(id);
            assertThat(item.path("title").asText()).isEqualTo("Live one");
            assertThat(event.id()).isEqualTo(item.path("id").asText());
            assertThat(stream.next("unread").json().path("unread").asLong()).isEqualTo(1);
            firstId = event.id();

            JsonNode status = awaitDone(id);
            assertThat(delivery(status, "live").path("status").asText()).isEqualTo("sent");
            assertThat(delivery(status, "push").path("status").asText()).isEqualTo("suppressed");
            assertThat(delivery(status, "push").path("reason").asText()).isEqualTo("present");
            assertThat(apns.receivedFor(token)).as("live instead of push").isEmpty();
            stream.next("ping");

            // a read elsewhere: the stream learns the new count
            assertThat(api.post("/v1/inbox/" + item.path("id").asText() + "/read", tenant.userToken(), Map.of()).status())
                    .isEqualTo(204);
            assertThat(stream.next("unread").json().path("unread").asLong()).isZero();
        }

        await().atMost(DEADLINE).untilAsserted(() -> assertThat(presence(tenant.userId()).path("present").asBoolean())
                .as("a stream closed cleanly stops counting at once").isFalse());
        assertThat(presence(tenant.userId()).path("lastSeenAt").asText()).isNotBlank();
        String missed = sendNotification(toUser(tenant.userId(), "While away"));
        JsonNode away = awaitDone(missed);
        assertThat(delivery(away, "live").path("reason").asText()).isEqualTo("away");
        assertThat(delivery(away, "push").path("status").asText()).isEqualTo("sent");
        await().atMost(DEADLINE).until(() -> apns.receivedFor(token).size() == 1);

        // reconnect where it left off, the token in the query as EventSource sends it
        try (Listener again = new Listener("?access_token=" + tenant.userToken(), null, firstId)) {
            assertThat(again.status).isEqualTo(200);
            JsonNode replayed = again.next("notification").json();
            assertThat(replayed.path("notificationId").asText()).isEqualTo(missed);
            assertThat(replayed.path("title").asText()).isEqualTo("While away");
        }
    }

    @Test
    void streamNeedsAUserToken() throws Exception {
        try (Listener none = new Listener("", null, null)) {
            assertThat(none.status).isEqualTo(401);
        }
        try (Listener wrong = new Listener("?access_token=nonsense", null, null)) {
            assertThat(wrong.status).isEqualTo(401);
        }
        try (Listener appKey = new Listener("", tenant.key(), null)) {
            assertThat(appKey.status).isEqualTo(403);
        }
    }

    /**
     * A stream Micronaut serves (a Last-Event-ID that is no event id of ours is left to the controller)
     * and one written straight to its connection get the same events, byte for byte as a client reads them.
     */
    @Test
    void bothWaysOfServingAStreamSendTheSameEvents() throws Exception {
        try (Listener direct = new Listener("", tenant.userToken(), null);
             Listener micronaut = new Listener("?access_token=" + tenant.userToken(), null, "not-an-event-id")) {
            assertThat(direct.status).isEqualTo(200);
            assertThat(micronaut.status).isEqualTo(200);
            assertThat(direct.next("unread")).isEqualTo(micronaut.next("unread"));
            assertThat(presence(tenant.userId()).path("connections").asLong()).isEqualTo(2);
            await().atMost(DEADLINE).until(() -> openStreams() == 2);

            String id = sendNotification(toUser(tenant.userId(), "Twice"));
            SseStream.Event one = direct.next("notification");
            assertThat(one.json().path("notificationId").asText()).isEqualTo(id);
            assertThat(micronaut.next("notification")).isEqualTo(one);
            assertThat(direct.next("unread")).isEqualTo(micronaut.next("unread"));
            assertThat(direct.next("ping")).isEqualTo(micronaut.next("ping"));
        }
        await().atMost(DEADLINE).untilAsserted(() -> assertThat(presence(tenant.userId()).path("present").asBoolean())
                .as("both streams left presence when they closed").isFalse());
        await().atMost(DEADLINE).until(() -> openStreams() == 0);
    }

    /** The node's {@code herald_live_streams} gauge. */
    private double openStreams() {
        return Api.metric(api.get("/metrics", null).body(), "herald_live_streams").orElse(-1);
    }

    /**
     * A stream request pipelined behind a request Micronaut is still answering (a call, waiting for APNs
     * to acknowledge its VoIP push): nothing is answered out of turn, and once the call is answered the
     * stream follows on the same connection.
     */
    @Test
    void aStreamPipelinedBehindAnotherRequestComesAfterItsAnswer() throws Exception {
        Map<String, Object> phone = iosDevice(tenant.app(), apnsToken());
        phone.put("voipToken", apnsToken());
        assertThat(api.put("/v1/devices/iphone-pipelined", tenant.userToken(), phone).status()).isIn(200, 201);
        byte[] call = Api.JSON.writeValueAsBytes(Map.of("callId", "pipelined-" + tenant.userId(),
                "callee", tenant.userId(), "caller", Map.of("id", "caller-1", "name", "Ada"), "ringSeconds", 30));
        MockApns.Gate gate = apns.hold();
        try (java.net.Socket socket = new java.net.Socket(server.getHost(), server.getPort())) {
            var out = new java.io.ByteArrayOutputStream();
            out.writeBytes(("POST /v1/calls HTTP/1.1\r\nHost: herald\r\nAuthorization: Bearer " + tenant.key()
                    + "\r\nContent-Type: application/json\r\nContent-Length: " + call.length + "\r\n\r\n")
                    .getBytes(java.nio.charset.StandardCharsets.US_ASCII));
            out.writeBytes(call);
            out.writeBytes(("GET /v1/inbox/stream HTTP/1.1\r\nHost: herald\r\nAuthorization: Bearer "
                    + tenant.userToken() + "\r\nAccept: text/event-stream\r\n\r\n")
                    .getBytes(java.nio.charset.StandardCharsets.US_ASCII));
            socket.getOutputStream().write(out.toByteArray());
            await().atMost(DEADLINE).until(() -> gate.waiting() == 1);
            // the call waits for APNs: the stream behind it must not answer first
            socket.setSoTimeout(1_000);
            assertThatThrownBy(() -> socket.getInputStream().read()).isInstanceOf(java.net.SocketTimeoutException.class);
            gate.open();
            socket.setSoTimeout((int) DEADLINE.toMillis());
            String read = readUntil(socket, "event: unread");
            assertThat(read).as(read).startsWith("HTTP/1.1 200");
            int stream = read.toLowerCase(java.util.Locale.ROOT).indexOf("content-type: text/event-stream");
            assertThat(stream).as(read).isGreaterThan(read.indexOf("\"routes\""));
        } finally {
            gate.open();
        }
    }

    /**
     * A client that stops reading is disconnected once {@code herald.stream.max-pending} bytes (64 KiB
     * here) wait for it, rather than held with a queue that grows without end, and stops counting as present.
     */
    @Test
    void aClientThatStopsReadingIsDisconnected() throws Exception {
        try (java.net.Socket socket = new java.net.Socket()) {
            socket.setReceiveBufferSize(4096);
            socket.connect(new java.net.InetSocketAddress(server.getHost(), server.getPort()));
            socket.getOutputStream().write(("GET /v1/inbox/stream HTTP/1.1\r\nHost: herald\r\nAuthorization: Bearer "
                    + tenant.userToken() + "\r\n\r\n").getBytes(java.nio.charset.StandardCharsets.US_ASCII));
            await().atMost(DEADLINE).until(() -> presence(tenant.userId()).path("present").asBoolean());
            Map<String, Object> big = toUser(tenant.userId(), "Flood");
            big.put("data", Map.of("pad", "x".repeat(2_500)));
            // nothing is read: the events pile up at the server once the connection's buffers are full
            await().atMost(DEADLINE).pollInterval(Duration.ofMillis(50)).until(() -> {
                sendNotification(big);
                return !presence(tenant.userId()).path("present").asBoolean();
            });
            await().atMost(DEADLINE).until(() -> openStreams() == 0);
        }
    }

    /** A stream URL that does not decode gets the contract's 400, like any other URL. */
    @Test
    void aStreamUrlWithABadEscapeIsABadRequest() throws Exception {
        try (java.net.Socket socket = new java.net.Socket(server.getHost(), server.getPort())) {
            socket.setSoTimeout((int) DEADLINE.toMillis());
            socket.getOutputStream().write(("GET /v1/inbox/stream?access_token=%zz HTTP/1.1\r\nHost: herald\r\n\r\n")
                    .getBytes(java.nio.charset.StandardCharsets.US_ASCII));
            String read = readUntil(socket, "}");
            assertThat(read).startsWith("HTTP/1.1 400");
            assertThat(read.toLowerCase(java.util.Locale.ROOT)).contains("content-type: application/problem+json");
        }
    }

    private static String readUntil(java.net.Socket socket, String end) throws java.io.IOException {
        StringBuilder read = new StringBuilder();
        byte[] buffer = new byte[8192];
        while (read.indexOf(end) < 0) {
            int n = socket.getInputStream().read(buffer);
            if (n < 0) {
                break;
            }
            read.append(new String(buffer, 0, n, java.nio.charset.StandardCharsets.UTF_8));
        }
        return read.toString();
    }

    @Test
    void presenceApiCountsAUserPresentForAMinute() {
        assertThat(api.put("/v1/presence", tenant.userToken(), Map.of()).status()).isEqualTo(204);
        JsonNode p = presence(tenant.userId());
        assertThat(p.path("present").asBoolean()).isTrue();
        assertThat(p.path("connections").asLong()).as("no stream, only the API").isZero();
        assertThat(api.get("/v1/users/a%2Fb/presence", tenant.key()).status()).isIn(400, 404);
        String sendOnly = fixtures.key(tenant.app(), "live", "send");
        assertThat(api.get("/v1/users/" + tenant.userId() + "/presence", sendOnly).status()).isEqualTo(403);
    }

    @Test
    void presentCalleeGetsTheCallOnTheStream() throws Exception {
        try (Listener stream = new Listener("", tenant.userToken(), null)) {
            stream.next("unread");
            Map<String, Object> call = new LinkedHashMap<>();
            call.put("callId", "live-" + tenant.userId());
            call.put("callee", tenant.userId());
            call.put("caller", Map.of("id", "caller-1", "name", "Grace"));
            Api.Response rung = api.post("/v1/calls", tenant.key(), call);
            assertThat(rung.status()).as(rung.toString()).isEqualTo(200);
            List<String> channels = new ArrayList<>();
            rung.json().path("routes").forEach(r -> channels.add(r.path("channel").asText() + ":" + r.path("status").asText()));
            assertThat(channels).contains("live:sent");
            JsonNode incoming = stream.next("call.incoming").json();
            assertThat(incoming.path("callId").asText()).isEqualTo("live-" + tenant.userId());
            assertThat(incoming.path("callerName").asText()).isEqualTo("Grace");

            Api.Response ended = api.delete("/v1/calls/live-" + tenant.userId() + "?reason=answered", tenant.key());
            assertThat(ended.status()).isEqualTo(200);
            JsonNode end = stream.next("call.ended").json();
            assertThat(end.path("reason").asText()).isEqualTo("answered");
        }
    }

    @Test
    void onAnAcknowledgingStreamThePushFollowsUnlessTheEventIsAcknowledgedInTime() throws Exception {
        String token = apnsToken();
        String installation = "iphone-ack-" + token.substring(0, 8);
        assertThat(api.put("/v1/devices/" + installation, tenant.userToken(), iosDevice(tenant.app(), token)).status())
                .isIn(200, 201);
        try (Listener stream = new Listener("?ack=true", tenant.userToken(), null)) {
            stream.next("unread");

            // acknowledged: no push
            String acked = sendNotification(toUser(tenant.userId(), "Acked"));
            assertThat(stream.next("notification").json().path("notificationId").asText()).isEqualTo(acked);
            assertThat(api.post("/v1/receipts", tenant.userToken(), Map.of("notificationId", acked, "event", "received"))
                    .status()).isEqualTo(204);
            JsonNode done = awaitDone(acked);
            assertThat(delivery(done, "push").path("status").asText()).isEqualTo("suppressed");
            assertThat(delivery(done, "push").path("reason").asText()).isEqualTo("present");
            assertThat(delivery(done, "live").path("status").asText()).isEqualTo("delivered");

            // not acknowledged within the timeout: the push goes out as if the user were away
            String ignored = sendNotification(toUser(tenant.userId(), "Ignored"));
            assertThat(stream.next("notification").json().path("notificationId").asText()).isEqualTo(ignored);
            JsonNode pushed = awaitDone(ignored);
            assertThat(delivery(pushed, "push").path("status").asText()).isEqualTo("sent");
            assertThat(delivery(pushed, "live").path("status").asText()).isEqualTo("sent");
            assertThat(apns.receivedFor(token)).hasSize(1);
            assertThat(apns.receivedFor(token).get(0).payload()).contains("Ignored");
        }
    }
}
