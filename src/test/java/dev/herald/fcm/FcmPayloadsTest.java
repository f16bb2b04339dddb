package dev.herald.fcm;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.google.firebase.internal.ApiClientUtils;
import com.google.firebase.messaging.Message;
import dev.herald.delivery.Priority;
import dev.herald.delivery.PushContent;
import dev.herald.delivery.PushKind;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.MethodSource;

import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.Map;
import java.util.stream.Stream;

import static org.assertj.core.api.Assertions.assertThat;

class FcmPayloadsTest {

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Instant NOW = Instant.parse("2030-01-02T03:04:05Z");

    @Test
    void anAlertHasItsNotificationDataLinkAndAndroidOptions() throws Exception {
        PushContent alert = new PushContent(PushKind.ALERT, "Hello", "World", Map.of("k", "v"), "herald://x", 1,
                "ding", "chat-7", Priority.NORMAL, NOW.plusSeconds(90));

        assertThat(wire(FcmPayloads.message(alert, "tok", NOW))).isEqualTo(JSON.readTree("""
                {"token": "tok", "notification": {"title": "Hello", "body": "World"},
                 "data": {"k": "v", "link": "herald://x"},
                 "android": {"priority": "normal", "ttl": "90s", "collapse_key": "chat-7"}}"""));
    }

    @ParameterizedTest
    @EnumSource(Priority.class)
    void aVoipPushIsDataOnlyAndAlwaysHigh(Priority priority) throws Exception {
        PushContent voip = new PushContent(PushKind.VOIP, null, null, Map.of("call", "1"), null, null, null, null,
                priority, NOW.plusSeconds(30));

        assertThat(wire(FcmPayloads.message(voip, "tok", NOW))).isEqualTo(JSON.readTree("""
                {"token": "tok", "data": {"call": "1"}, "android": {"priority": "high", "ttl": "30s"}}"""));
    }

    @Test
    void aBackgroundPushKeepsItsPriorityAndAnExpiredOneHasTtlZero() throws Exception {
        PushContent background = new PushContent(PushKind.BACKGROUND, "ignored", null, Map.of(), null, null, null,
                null, Priority.NORMAL, NOW.minusSeconds(1));

        assertThat(wire(FcmPayloads.message(background, "tok", NOW))).isEqualTo(JSON.readTree("""
                {"token": "tok", "android": {"priority": "normal", "ttl": "0s"}}"""));
    }

    static Stream<PushContent> contents() {
        return Stream.of(
                new PushContent(PushKind.ALERT, "Grüße", "☃ body", Map.of("a", "1", "b", "\"quoted\""), "herald://x", 2,
                        "ding", "ck", Priority.HIGH, NOW.plusMillis(86_400_123)),
                new PushContent(PushKind.ALERT, "t", null, Map.of(), null, null, null, null, Priority.NORMAL, NOW),
                new PushContent(PushKind.BACKGROUND, null, null, Map.of("sync", "1"), "l", null, null, "c",
                        Priority.HIGH, NOW.plusMillis(1)),
                new PushContent(PushKind.VOIP, null, null, Map.of(), null, null, null, null, Priority.NORMAL,
                        NOW.minusSeconds(30)));
    }

    @ParameterizedTest
    @MethodSource("contents")
    void theWireBodyIsWhatFirebaseAdminWritesForTheMessage(PushContent content) throws Exception {
        byte[] firebase = ApiClientUtils.getDefaultJsonFactory()
                .toByteArray(Map.of("message", FcmPayloads.message(content, "tok:en", NOW)));

        assertThat(JSON.readTree(FcmPayloads.json(content, "tok:en", NOW))).isEqualTo(JSON.readTree(firebase));
    }

    @Test
    void sizeIsTheUtf8JsonOfNotificationAndData() {
        PushContent alert = new PushContent(PushKind.ALERT, "Grüße", "b", Map.of("k", "v"), "l", null, null, null,
                Priority.HIGH, NOW);
        String counted = "{\"notification\":{\"title\":\"Grüße\",\"body\":\"b\"},\"data\":{\"k\":\"v\",\"link\":\"l\"}}";

        assertThat(FcmPayloads.size(alert)).isEqualTo(counted.getBytes(StandardCharsets.UTF_8).length);
        assertThat(FcmPayloads.size(new PushContent(PushKind.BACKGROUND, null, null, Map.of(), null, null, null, null,
                Priority.NORMAL, NOW))).isEqualTo(2);
    }

    @Test
    void sizeGrowsWithTheDataUpToTheLimit() {
        PushContent big = new PushContent(PushKind.BACKGROUND, null, null, Map.of("blob", "x".repeat(4000)), null, null,
                null, null, Priority.NORMAL, NOW);

        assertThat(FcmPayloads.size(big)).isGreaterThan(FcmPayloads.MAX_PAYLOAD_BYTES);
    }

    /** The message as firebase-admin writes it into {@code {"message": ...}}. */
    private static com.fasterxml.jackson.databind.JsonNode wire(Message message) throws Exception {
        return JSON.readTree(ApiClientUtils.getDefaultJsonFactory().toByteArray(message));
    }
}
