package dev.herald.apns;

import com.eatthepath.pushy.apns.server.RejectionReason;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.nimbusds.jwt.SignedJWT;
import dev.herald.delivery.GatewayCredentials;
import dev.herald.delivery.Priority;
import dev.herald.delivery.Push;
import dev.herald.delivery.PushContent;
import dev.herald.delivery.PushKind;
import dev.herald.delivery.PushResult;
import dev.herald.support.Fixtures;
import dev.herald.support.MockApns;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.time.Duration;
import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/** {@link ApnsSender} against {@link MockApns}: real HTTP/2, TLS and token authentication on loopback. */
class ApnsSenderTest {

    private static final String TEAM = "TEAM012345";
    private static final String KEY_ID = "KEY0123456";
    private static final String BUNDLE = "dev.herald.example";
    private static final String P8 = Fixtures.p8();
    private static final Instant V1 = Instant.parse("2026-01-01T00:00:00Z");
    private static final ObjectMapper JSON = new ObjectMapper();

    private static MockApns apns;

    private SimpleMeterRegistry meters;
    private ApnsSender sender;

    @BeforeAll
    static void startApns() {
        apns = MockApns.create();
        apns.trust(TEAM, KEY_ID, P8);
    }

    @AfterAll
    static void stopApns() {
        apns.close();
    }

    @BeforeEach
    void newSender() {
        meters = new SimpleMeterRegistry();
        sender = sender(2, 1000);
    }

    @AfterEach
    void closeSender() {
        sender.close();
    }

    @Test
    void alertCarriesEveryHeaderAndTheAlertPayload() throws Exception {
        String token = Fixtures.apnsToken();
        Instant expires = Instant.parse("2030-01-02T03:04:05Z");
        PushContent content = new PushContent(PushKind.ALERT, "Hello", "A new message", Map.of("thread", "t-1"),
                "herald://inbox/1", 3, "ping.caf", "conversation-1", Priority.HIGH, expires);
        Push push = new Push(UUID.randomUUID(), token, content);

        PushResult result = send(credentials("app-alert"), push);

        assertThat(result).isEqualTo(new PushResult.Accepted(push.deliveryId().toString()));
        MockApns.Received received = single(token);
        assertThat(received.headers()).containsAllEntriesOf(Map.of(
                ":method", "POST",
                ":path", "/3/device/" + token,
                "apns-topic", BUNDLE,
                "apns-push-type", "alert",
                "apns-priority", "10",
                "apns-expiration", String.valueOf(expires.getEpochSecond()),
                "apns-collapse-id", "conversation-1",
                "apns-id", push.deliveryId().toString()));
        SignedJWT jwt = SignedJWT.parse(received.header("authorization").substring("bearer ".length()));
        assertThat(jwt.getHeader().getKeyID()).isEqualTo(KEY_ID);
        assertThat(jwt.getJWTClaimsSet().getIssuer()).isEqualTo(TEAM);
        assertThat(JSON.readTree(received.payload())).isEqualTo(JSON.readTree("""
                {"aps": {"alert": {"title": "Hello", "body": "A new message"}, "badge": 3, "sound": "ping.caf"},
                 "thread": "t-1", "link": "herald://inbox/1"}"""));
        assertThat(meters.get("herald.push.results")
                .tags("gateway", "apns", "app", "app-alert", "outcome", "accepted", "reason", "none").counter().count())
                .isEqualTo(1);
        assertThat(meters.get("herald.push.latency").tags("gateway", "apns", "app", "app-alert").timer().count())
                .isEqualTo(1);
    }

    @Test
    void normalAlertGoesAtPriorityFiveWithoutCollapseId() {
        String token = Fixtures.apnsToken();
        PushContent content = new PushContent(PushKind.ALERT, "Digest", null, Map.of(), null, null, null, null,
                Priority.NORMAL, Instant.now().plus(Duration.ofHours(1)));

        assertThat(send(credentials("app-normal"), new Push(UUID.randomUUID(), token, content)))
                .isInstanceOf(PushResult.Accepted.class);

        MockApns.Received received = single(token);
        assertThat(received.header("apns-priority")).isEqualTo("5");
        assertThat(received.headers()).doesNotContainKey("apns-collapse-id");
    }

    @Test
    void backgroundPushGoesAtPriorityFiveEvenWhenHighWasAsked() throws Exception {
        String token = Fixtures.apnsToken();
        PushContent content = new PushContent(PushKind.BACKGROUND, null, null, Map.of("sync", "inbox"), null, 7, null,
                null, Priority.HIGH, Instant.now().plus(Duration.ofHours(1)));

        assertThat(send(credentials("app-background"), new Push(UUID.randomUUID(), token, content)))
                .isInstanceOf(PushResult.Accepted.class);

        MockApns.Received received = single(token);
        assertThat(received.headers()).containsAllEntriesOf(Map.of(
                "apns-topic", BUNDLE, "apns-push-type", "background", "apns-priority", "5"));
        assertThat(JSON.readTree(received.payload())).isEqualTo(JSON.readTree("""
                {"aps": {"content-available": 1, "badge": 7}, "sync": "inbox"}"""));
    }

    @Test
    void voipPushGoesToTheVoipTopicAtPriorityTen() throws Exception {
        String token = Fixtures.apnsToken();
        PushContent content = new PushContent(PushKind.VOIP, null, null, Map.of("call", "c-42", "caller", "Ada"), null,
                null, null, null, Priority.NORMAL, Instant.now().plus(Duration.ofSeconds(30)));

        assertThat(send(credentials("app-voip"), new Push(UUID.randomUUID(), token, content)))
                .isInstanceOf(PushResult.Accepted.class);

        MockApns.Received received = single(token);
        assertThat(received.headers()).containsAllEntriesOf(Map.of(
                "apns-topic", BUNDLE + ".voip", "apns-push-type", "voip", "apns-priority", "10"));
        assertThat(JSON.readTree(received.payload())).isEqualTo(JSON.readTree("""
                {"aps": {}, "call": "c-42", "caller": "Ada"}"""));
    }

    static Stream<Arguments> answers() {
        Instant since = Instant.parse("2026-03-04T05:06:07.890Z");
        return Stream.of(
                Arguments.of(MockApns.Answer.unregistered(since), new PushResult.TokenInvalid("Unregistered", since)),
                Arguments.of(MockApns.Answer.reject(RejectionReason.BAD_DEVICE_TOKEN), new PushResult.TokenInvalid("BadDeviceToken", null)),
                Arguments.of(MockApns.Answer.reject(RejectionReason.TOO_MANY_REQUESTS), new PushResult.Retry("TooManyRequests", null)),
                Arguments.of(MockApns.Answer.reject(RejectionReason.SERVICE_UNAVAILABLE), new PushResult.Retry("ServiceUnavailable", null)),
                Arguments.of(MockApns.Answer.reject(RejectionReason.INTERNAL_SERVER_ERROR), new PushResult.Retry("InternalServerError", null)),
                Arguments.of(MockApns.Answer.reject(RejectionReason.SHUTDOWN), new PushResult.Retry("Shutdown", null)),
                Arguments.of(MockApns.Answer.reject(RejectionReason.DEVICE_TOKEN_NOT_FOR_TOPIC), new PushResult.Rejected("DeviceTokenNotForTopic")),
                Arguments.of(MockApns.Answer.reject(RejectionReason.BAD_EXPIRATION_DATE), new PushResult.Rejected("BadExpirationDate")));
    }

    @ParameterizedTest
    @MethodSource("answers")
    void apnsAnswersMapToResults(MockApns.Answer answer, PushResult expected) {
        String token = Fixtures.apnsToken();
        apns.answer(token, answer);

        assertThat(send(credentials("app-answers"), alert(token))).isEqualTo(expected);
    }

    @Test
    void aProviderTokenApnsCannotVerifyIsRejected() {
        String token = Fixtures.apnsToken();
        GatewayCredentials untrusted = credentials("app-untrusted", V1, KEY_ID, Fixtures.p8());

        assertThat(send(untrusted, alert(token))).isEqualTo(new PushResult.Rejected("InvalidProviderToken"));
        assertThat(apns.receivedFor(token)).hasSize(1);
    }

    @Test
    void credentialsThatCannotBuildAClientAreRejectedWithoutSending() {
        String token = Fixtures.apnsToken();
        GatewayCredentials bad = credentials("app-bad-key", V1, KEY_ID, "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n");
        GatewayCredentials incomplete = new GatewayCredentials("app-incomplete", V1,
                JsonNodeFactory.instance.objectNode().put("teamId", TEAM));

        assertThat(send(bad, alert(token))).isEqualTo(new PushResult.Rejected("bad_credentials"));
        assertThat(send(bad, alert(token))).isEqualTo(new PushResult.Rejected("bad_credentials"));
        assertThat(send(incomplete, alert(token))).isEqualTo(new PushResult.Rejected("bad_credentials"));
        assertThat(apns.receivedFor(token)).isEmpty();
        assertThat(meters.get("herald.push.results").tags("app", "app-bad-key", "reason", "bad_credentials").counter().count())
                .isEqualTo(2);
    }

    @Test
    void aPayloadOverApnsLimitIsRejectedWithoutSending() {
        String token = Fixtures.apnsToken();
        PushContent content = new PushContent(PushKind.ALERT, "Big", "x".repeat(ApnsPayloads.MAX_PAYLOAD_BYTES), Map.of(),
                null, null, null, null, Priority.HIGH, Instant.now().plus(Duration.ofHours(1)));

        assertThat(send(credentials("app-big"), new Push(UUID.randomUUID(), token, content)))
                .isEqualTo(new PushResult.Rejected("PayloadTooLarge"));
        assertThat(apns.receivedFor(token)).isEmpty();
    }

    @Test
    void anOutageIsRetryAndTheSameSenderDeliversOnceApnsIsBack() {
        GatewayCredentials credentials = credentials("app-outage");
        assertThat(send(credentials, alert(Fixtures.apnsToken()))).isInstanceOf(PushResult.Accepted.class);

        apns.stop();
        try {
            assertThat(send(credentials, alert(Fixtures.apnsToken()))).isEqualTo(new PushResult.Retry("connection", null));
            assertThat(meters.get("herald.push.results").tags("app", "app-outage", "outcome", "retry", "reason", "connection")
                    .counter().count()).isEqualTo(1);
        } finally {
            apns.start();
        }

        String token = Fixtures.apnsToken();
        assertThat(send(credentials, alert(token))).isInstanceOf(PushResult.Accepted.class);
        assertThat(apns.receivedFor(token)).hasSize(1);
    }

    @Test
    void aNewCredentialsVersionBuildsANewClientAndAnOlderOneDoesNotGoBack() throws Exception {
        String newKeyId = "KEY9876543";
        String newP8 = Fixtures.p8();
        apns.trust(TEAM, newKeyId, newP8);
        GatewayCredentials v1 = credentials("app-rotated", V1, KEY_ID, P8);
        GatewayCredentials v2 = credentials("app-rotated", V1.plusSeconds(60), newKeyId, newP8);

        String first = Fixtures.apnsToken();
        String second = Fixtures.apnsToken();
        String third = Fixtures.apnsToken();
        assertThat(send(v1, alert(first))).isInstanceOf(PushResult.Accepted.class);
        assertThat(send(v2, alert(second))).isInstanceOf(PushResult.Accepted.class);
        assertThat(send(v1, alert(third))).isInstanceOf(PushResult.Accepted.class);

        assertThat(keyIdOf(single(first))).isEqualTo(KEY_ID);
        assertThat(keyIdOf(single(second))).isEqualTo(newKeyId);
        assertThat(keyIdOf(single(third))).isEqualTo(newKeyId);
    }

    @Test
    void aCallRingsWhileTheAppsNotificationsFillEverySlotWithApns() {
        ApnsSender bounded = sender(1, 2);
        GatewayCredentials credentials = credentials("app-lanes");
        // the calls' connection is up before APNs stops answering notifications (a held request blocks
        // a mock thread, which may also be the one that accepts connections)
        assertThat(bounded.send(credentials, voip(Fixtures.apnsToken()))).succeedsWithin(Duration.ofSeconds(5));
        MockApns.Gate gate = apns.holdAllButVoip();
        List<CompletableFuture<PushResult>> alerts = new ArrayList<>();
        try {
            for (int i = 0; i < 4; i++) {
                alerts.add(bounded.send(credentials, alert(Fixtures.apnsToken())));
            }
            await().atMost(Duration.ofSeconds(5)).until(() -> gate.waiting() >= 1);
            String voipToken = Fixtures.apnsToken();
            // the call has a connection and in-flight slots of its own: it neither waits for a slot nor
            // behind the held notifications on their connection
            assertThat(bounded.send(credentials, voip(voipToken))).succeedsWithin(Duration.ofSeconds(2))
                    .isInstanceOf(PushResult.Accepted.class);
            assertThat(apns.receivedFor(voipToken)).singleElement()
                    .satisfies(r -> assertThat(r.header("apns-push-type")).isEqualTo("voip"));
            assertThat(alerts).noneMatch(CompletableFuture::isDone);
        } finally {
            gate.open();
        }
        assertThat(CompletableFuture.allOf(alerts.toArray(CompletableFuture[]::new)))
                .succeedsWithin(Duration.ofSeconds(5));
        assertThat(alerts).allSatisfy(f -> assertThat(f.join()).isInstanceOf(PushResult.Accepted.class));
        bounded.close();
    }

    @Test
    void noMoreThanMaxInFlightPushesAreWithApnsAtOnce() {
        ApnsSender bounded = sender(4, 2);
        GatewayCredentials credentials = credentials("app-bounded");
        MockApns.Gate gate = apns.hold();
        List<CompletableFuture<PushResult>> sent = new ArrayList<>();
        try {
            for (int i = 0; i < 6; i++) {
                sent.add(bounded.send(credentials, alert(Fixtures.apnsToken())));
            }
            // two connections take the first two pushes, each held on its own mock thread; with four
            // connections, a sender without the limit would have four pushes waiting here
            await().atMost(Duration.ofSeconds(5)).until(() -> gate.waiting() >= 2);
            await().during(Duration.ofMillis(300)).atMost(Duration.ofSeconds(2))
                    .untilAsserted(() -> assertThat(gate.waiting()).as("pushes held at APNs").isLessThanOrEqualTo(2));
            assertThat(sent).noneMatch(CompletableFuture::isDone);
        } finally {
            gate.open();
        }

        assertThat(CompletableFuture.allOf(sent.toArray(CompletableFuture[]::new)))
                .succeedsWithin(Duration.ofSeconds(5));
        assertThat(sent).allSatisfy(f -> assertThat(f.join()).isInstanceOf(PushResult.Accepted.class));
        assertThat(gate.peak()).isEqualTo(2);
        bounded.close();
    }

    @Test
    void aClosedSenderAnswersRetryAndClosesOnlyOnce() {
        GatewayCredentials credentials = credentials("app-closed");
        assertThat(send(credentials, alert(Fixtures.apnsToken()))).isInstanceOf(PushResult.Accepted.class);

        sender.close();
        sender.close();

        assertThat(send(credentials, alert(Fixtures.apnsToken()))).isEqualTo(new PushResult.Retry("closed", null));
    }

    private ApnsSender sender(int connections, int maxInFlight) {
        return new ApnsSender(new ApnsConfiguration("127.0.0.1", apns.port(), apns.certificatePath().toString(),
                connections, maxInFlight), meters);
    }

    private PushResult send(GatewayCredentials credentials, Push push) {
        CompletableFuture<PushResult> result = sender.send(credentials, push);
        try {
            return result.get(10, TimeUnit.SECONDS);
        } catch (Exception e) {
            throw new AssertionError("the sender did not answer: " + e, e);
        }
    }

    private static Push alert(String token) {
        return new Push(UUID.randomUUID(), token, new PushContent(PushKind.ALERT, "Hi", null, Map.of(), null, null,
                null, null, Priority.HIGH, Instant.now().plus(Duration.ofHours(1)).truncatedTo(ChronoUnit.SECONDS)));
    }

    private static Push voip(String token) {
        return new Push(UUID.randomUUID(), token, new PushContent(PushKind.VOIP, null, null, Map.of("callId", "c-7"),
                null, null, null, null, Priority.HIGH, Instant.now().plus(Duration.ofSeconds(30))));
    }

    private static MockApns.Received single(String token) {
        List<MockApns.Received> received = apns.receivedFor(token);
        assertThat(received).hasSize(1);
        return received.get(0);
    }

    private static String keyIdOf(MockApns.Received received) throws Exception {
        return SignedJWT.parse(received.header("authorization").substring("bearer ".length())).getHeader().getKeyID();
    }

    private static GatewayCredentials credentials(String app) {
        return credentials(app, V1, KEY_ID, P8);
    }

    private static GatewayCredentials credentials(String app, Instant version, String keyId, String p8) {
        ObjectNode block = JsonNodeFactory.instance.objectNode()
                .put("teamId", TEAM).put("keyId", keyId).put("privateKey", p8)
                .put("bundleId", BUNDLE).put("environment", "sandbox");
        return new GatewayCredentials(app, version, block);
    }
}
