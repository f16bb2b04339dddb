package dev.herald.fcm;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.google.firebase.FirebaseApp;
import dev.herald.delivery.GatewayCredentials;
import dev.herald.delivery.Priority;
import dev.herald.delivery.Push;
import dev.herald.delivery.PushContent;
import dev.herald.delivery.PushKind;
import dev.herald.delivery.PushResult;
import dev.herald.support.FakeFcm;
import dev.herald.support.Fixtures;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.net.ServerSocket;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneOffset;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/** {@link FcmSender} against a loopback FCM endpoint over real HTTP. */
class FcmSenderTest {

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Instant NOW = Instant.parse("2030-01-02T03:04:05Z");
    private static final Instant V1 = Instant.parse("2030-01-01T00:00:00Z");
    private static final String PROJECT = "herald-test";

    private static FakeFcm fcm;
    private static Map<String, Object> account;

    private SimpleMeterRegistry registry;
    private FcmSender sender;
    private String app;

    @BeforeAll
    static void startFcm() {
        fcm = new FakeFcm();
        account = Fixtures.serviceAccount(PROJECT, fcm.tokenUri());
    }

    @AfterAll
    static void stopFcm() {
        fcm.close();
    }

    @BeforeEach
    void newSender() {
        registry = new SimpleMeterRegistry();
        sender = new FcmSender(fcm.baseUrl(), 100, registry, Clock.fixed(NOW, ZoneOffset.UTC));
        app = Fixtures.unique("app");
        fcm.clear();
    }

    @AfterEach
    void closeSender() {
        sender.close();
    }

    @Test
    void sendsAnAlertAsFirebaseAdminWould() throws Exception {
        String token = Fixtures.fcmToken();
        PushContent alert = new PushContent(PushKind.ALERT, "Hello", "World", Map.of("k", "v"), "herald://inbox/1",
                3, "ding", "chat-7", Priority.HIGH, NOW.plusSeconds(3600));

        PushResult result = send(credentials(V1, account), alert, token);

        assertThat(result).isInstanceOf(PushResult.Accepted.class);
        assertThat(((PushResult.Accepted) result).gatewayId()).startsWith("projects/" + PROJECT + "/messages/");
        FakeFcm.Send sent = onlySend();
        assertThat(sent.projectId()).isEqualTo(PROJECT);
        assertThat(sent.protocol()).isEqualTo("HTTP/2"); // h2c to a plain http:// base URL
        assertThat(sent.header("host")).isEqualTo("fcm.googleapis.com"); // as addressed; the route was rewritten
        assertThat(sent.header("authorization")).startsWith("Bearer ya29.fake-");
        assertThat(sent.header("x-goog-api-format-version")).isEqualTo("2");
        assertThat(sent.header("content-type")).startsWith("application/json");
        assertThat(sent.body()).isEqualTo(json("""
                {"message": {
                  "token": "%s",
                  "notification": {"title": "Hello", "body": "World"},
                  "data": {"k": "v", "link": "herald://inbox/1"},
                  "android": {"priority": "high", "ttl": "3600s", "collapse_key": "chat-7"}
                }}""".formatted(token)));
    }

    @Test
    void sendsBackgroundAndVoipPushesAsDataOnly() throws Exception {
        String background = Fixtures.fcmToken();
        String voip = Fixtures.fcmToken();
        GatewayCredentials credentials = credentials(V1, account);

        send(credentials, new PushContent(PushKind.BACKGROUND, null, null, Map.of("sync", "1"), null,
                null, null, null, Priority.NORMAL, NOW.plusMillis(1500)), background);
        send(credentials, new PushContent(PushKind.VOIP, null, null, Map.of("call", "c-1"), null,
                null, null, null, Priority.NORMAL, NOW.minusSeconds(5)), voip);

        List<FakeFcm.Send> sends = fcm.sends();
        // the ttl is the time left rounded up to whole seconds: 1.5 s left is "2s"
        assertThat(sends).extracting(FakeFcm.Send::body).containsExactly(
                json("""
                        {"message": {"token": "%s", "data": {"sync": "1"},
                          "android": {"priority": "normal", "ttl": "2s"}}}""".formatted(background)),
                json("""
                        {"message": {"token": "%s", "data": {"call": "c-1"},
                          "android": {"priority": "high", "ttl": "0s"}}}""".formatted(voip)));
    }

    static Stream<Arguments> errors() {
        return Stream.of(
                Arguments.of(FakeFcm.Answer.unregistered(), new PushResult.TokenInvalid("UNREGISTERED", null)),
                Arguments.of(FakeFcm.Answer.senderIdMismatch(), new PushResult.TokenInvalid("SENDER_ID_MISMATCH", null)),
                Arguments.of(FakeFcm.Answer.invalidArgument(), new PushResult.Rejected("INVALID_ARGUMENT")),
                Arguments.of(FakeFcm.Answer.thirdPartyAuthError(), new PushResult.Rejected("THIRD_PARTY_AUTH_ERROR")),
                Arguments.of(FakeFcm.Answer.unavailable("30"), new PushResult.Retry("UNAVAILABLE", Duration.ofSeconds(30))),
                Arguments.of(FakeFcm.Answer.quotaExceeded("60"), new PushResult.Retry("QUOTA_EXCEEDED", Duration.ofSeconds(60))),
                Arguments.of(FakeFcm.Answer.internal(), new PushResult.Retry("INTERNAL", null)));
    }

    @ParameterizedTest
    @MethodSource("errors")
    void mapsEachFcmErrorToItsResult(FakeFcm.Answer answer, PushResult expected) throws Exception {
        String token = Fixtures.fcmToken();
        fcm.answer(token, answer);

        assertThat(send(credentials(V1, account), alert(), token)).isEqualTo(expected);
        assertThat(fcm.sends()).hasSize(1); // firebase-admin would have retried the 503 itself
        String outcome = expected instanceof PushResult.Retry ? "retry"
                : expected instanceof PushResult.Rejected ? "rejected" : "token_invalid";
        assertThat(registry.get("herald.push.results").tags("gateway", "fcm", "app", app, "outcome", outcome,
                "reason", answer.errorCode()).counter().count()).isEqualTo(1);
    }

    @Test
    void scriptedAnswersHoldWhenTheEndpointDoesNotRecord() throws Exception {
        String token = Fixtures.fcmToken();
        fcm.answer(token, FakeFcm.Answer.unregistered());
        fcm.recording(false);
        try {
            assertThat(send(credentials(V1, account), alert(), token)).isEqualTo(new PushResult.TokenInvalid("UNREGISTERED", null));
        } finally {
            fcm.recording(true);
        }
    }

    @Test
    void retriesWhileFcmIsDownAndDeliversAgainOnceItIsBack() throws Exception {
        GatewayCredentials credentials = credentials(V1, account);
        assertThat(send(credentials, alert(), Fixtures.fcmToken())).isInstanceOf(PushResult.Accepted.class);

        fcm.stop();
        try {
            assertThat(send(credentials, alert(), Fixtures.fcmToken())).isEqualTo(new PushResult.Retry("connection", null));
        } finally {
            fcm.start();
        }

        await().atMost(Duration.ofSeconds(5)).untilAsserted(() ->
                assertThat(send(credentials, alert(), Fixtures.fcmToken())).isInstanceOf(PushResult.Accepted.class));
        assertThat(registry.get("herald.push.results").tags("outcome", "retry", "reason", "connection")
                .counter().count()).isGreaterThanOrEqualTo(1);
        assertThat(registry.get("herald.push.latency").tags("gateway", "fcm", "app", app).timer().count())
                .isGreaterThanOrEqualTo(3);
    }

    @Test
    void fetchesOneAccessTokenFromTheServiceAccountsTokenUri() throws Exception {
        GatewayCredentials credentials = credentials(V1, account);
        for (int i = 0; i < 3; i++) {
            assertThat(send(credentials, alert(), Fixtures.fcmToken())).isInstanceOf(PushResult.Accepted.class);
        }

        assertThat(fcm.tokenRequests()).hasSize(1); // POSTed to the account's token_uri
        JsonNode claims = fcm.tokenRequests().get(0).claims();
        assertThat(claims.path("iss").asText()).isEqualTo(account.get("client_email"));
        assertThat(claims.path("aud").asText()).isEqualTo("https://oauth2.googleapis.com/token"); // as Google requires
        assertThat(claims.path("scope").asText()).contains("https://www.googleapis.com/auth/cloud-platform");
        assertThat(fcm.sends()).extracting(s -> s.header("authorization")).containsOnly(fcm.sends().get(0).header("authorization"));
    }

    @Test
    void newCredentialsReplaceTheFirebaseApp() throws Exception {
        Map<String, Object> other = Fixtures.serviceAccount("herald-other", fcm.tokenUri());
        Instant v2 = V1.plusSeconds(60);
        send(credentials(V1, account), alert(), Fixtures.fcmToken());
        assertThat(appNames()).singleElement().asString().endsWith("/" + app + "@" + V1);

        send(credentials(v2, other), alert(), Fixtures.fcmToken());
        send(credentials(V1, account), alert(), Fixtures.fcmToken()); // a late push with the old version

        assertThat(appNames()).singleElement().asString().endsWith("/" + app + "@" + v2);
        assertThat(fcm.sends()).extracting(FakeFcm.Send::projectId).containsExactly(PROJECT, "herald-other", "herald-other");
        assertThat(fcm.tokenRequests()).extracting(t -> t.claims().path("iss").asText())
                .containsExactly((String) account.get("client_email"), (String) other.get("client_email"));
    }

    @Test
    void unusableServiceAccountsAreRejectedWithoutThrowing() throws Exception {
        Map<String, Object> broken = new HashMap<>(account);
        broken.put("private_key", "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n");
        GatewayCredentials noBlock = new GatewayCredentials(app, V1, JSON.createObjectNode());

        assertThat(send(credentials(V1, broken), alert(), Fixtures.fcmToken()))
                .isEqualTo(new PushResult.Rejected("bad_credentials"));
        assertThat(sender.send(noBlock, new Push(UUID.randomUUID(), Fixtures.fcmToken(), alert()))
                .get(5, TimeUnit.SECONDS)).isEqualTo(new PushResult.Rejected("bad_credentials"));
        assertThat(fcm.sends()).isEmpty();
        assertThat(appNames()).isEmpty();
    }

    @Test
    void aRefusedServiceAccountIsRejectedAndAnUnreachableTokenEndpointRetried() throws Exception {
        fcm.refuseTokens(true);
        try {
            assertThat(send(credentials(V1, account), alert(), Fixtures.fcmToken()))
                    .isEqualTo(new PushResult.Rejected("bad_credentials"));
        } finally {
            fcm.refuseTokens(false);
        }

        Map<String, Object> unreachable = Fixtures.serviceAccount(PROJECT, "http://127.0.0.1:" + closedPort() + "/token");
        assertThat(send(credentials(V1.plusSeconds(1), unreachable), alert(), Fixtures.fcmToken()))
                .isEqualTo(new PushResult.Retry("connection", null));
        assertThat(fcm.sends()).isEmpty();
    }

    @Test
    void aRevokedAccessTokenIsRetriedAndReplaced() throws Exception {
        GatewayCredentials credentials = credentials(V1, account);
        send(credentials, alert(), Fixtures.fcmToken());
        fcm.revokeTokens();

        assertThat(send(credentials, alert(), Fixtures.fcmToken())).isEqualTo(new PushResult.Retry("UNAUTHENTICATED", null));
        await().atMost(Duration.ofSeconds(5)).untilAsserted(() ->
                assertThat(send(credentials, alert(), Fixtures.fcmToken())).isInstanceOf(PushResult.Accepted.class));
        assertThat(fcm.tokenRequests()).hasSize(2);
    }

    @Test
    void closeDeletesEveryAppAndLaterPushesAreRetried() throws Exception {
        send(credentials(V1, account), alert(), Fixtures.fcmToken());

        sender.close();
        sender.close();

        assertThat(appNames()).isEmpty();
        assertThat(send(credentials(V1, account), alert(), Fixtures.fcmToken())).isEqualTo(new PushResult.Retry("closed", null));
    }

    private PushResult send(GatewayCredentials credentials, PushContent content, String token) throws Exception {
        return sender.send(credentials, new Push(UUID.randomUUID(), token, content)).get(10, TimeUnit.SECONDS);
    }

    private GatewayCredentials credentials(Instant version, Map<String, Object> serviceAccount) {
        return new GatewayCredentials(app, version, JSON.valueToTree(Map.of("serviceAccount", serviceAccount)));
    }

    private static PushContent alert() {
        return new PushContent(PushKind.ALERT, "Hi", null, Map.of(), null, null, null, null, Priority.HIGH,
                NOW.plusSeconds(60));
    }

    private FakeFcm.Send onlySend() {
        assertThat(fcm.sends()).hasSize(1);
        return fcm.sends().get(0);
    }

    private List<String> appNames() {
        return FirebaseApp.getApps().stream().map(FirebaseApp::getName).filter(n -> n.contains("/" + app + "@")).toList();
    }

    private static JsonNode json(String text) throws Exception {
        return JSON.readTree(text);
    }

    private static int closedPort() throws Exception {
        try (ServerSocket socket = new ServerSocket(0)) {
            return socket.getLocalPort();
        }
    }
}
