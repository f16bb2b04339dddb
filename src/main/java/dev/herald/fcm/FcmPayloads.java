package dev.herald.fcm;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonGenerator;
import com.google.firebase.messaging.AndroidConfig;
import com.google.firebase.messaging.Message;
import com.google.firebase.messaging.Notification;
import dev.herald.delivery.Priority;
import dev.herald.delivery.PushContent;
import dev.herald.delivery.PushKind;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.time.Duration;
import java.time.Instant;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Turns gateway-neutral {@link PushContent} into an FCM HTTP v1 {@link Message} for one registration token.
 *
 * <ul>
 *   <li>{@code notification} (title, body) for {@link PushKind#ALERT} only; background and VoIP pushes are
 *       data-only, so the app's {@code onMessageReceived} handles them.</li>
 *   <li>{@code data}: the content's data plus {@code link} when there is one.</li>
 *   <li>{@code android}: priority {@code HIGH} for {@link Priority#HIGH} and for every VoIP push (an incoming call
 *       must wake the device), else {@code NORMAL}; {@code ttl} the time left until {@code expiresAt} (never
 *       negative: an expired push is sent with ttl 0, "now or never"); {@code collapseKey} when set.</li>
 * </ul>
 * No {@code apns} block: iOS devices are reached through APNs directly. Stateless and thread-safe.
 *
 * @see <a href="https://firebase.google.com/docs/reference/fcm/rest/v1/projects.messages">FCM v1 message</a>
 */
public final class FcmPayloads {

    /**
     * The largest {@link #size} to accept for an FCM push (FcmSender does not check; FCM answers a bigger one
     * {@code INVALID_ARGUMENT}, a rejection). FCM allows 4096 bytes of notification and data payload; Herald keeps
     * a margin below it because FCM's own count (keys and values, plus a few fields it adds) is not published
     * byte for byte.
     *
     * @see <a href="https://firebase.google.com/docs/cloud-messaging/concept-options#notifications_and_data_messages">
     *     FCM: "The maximum payload for both message types is 4096 bytes"</a>
     */
    public static final int MAX_PAYLOAD_BYTES = 4000;

    /** The data key carrying {@link PushContent#link()}. */
    public static final String LINK_KEY = "link";

    private static final JsonFactory JSON = new JsonFactory();

    private FcmPayloads() {
    }

    /** The message for {@code token}, its ttl counted from the current time. */
    public static Message message(PushContent content, String token) {
        return message(content, token, Instant.now());
    }

    /** The message for {@code token}, its ttl counted from {@code now}. */
    public static Message message(PushContent content, String token, Instant now) {
        Message.Builder message = Message.builder()
                .setToken(token)
                .putAllData(data(content))
                .setAndroidConfig(android(content, now));
        if (content.kind() == PushKind.ALERT) {
            message.setNotification(Notification.builder().setTitle(content.title()).setBody(content.body()).build());
        }
        return message.build();
    }

    /**
     * The HTTP v1 send body {@code {"message": ...}} for {@code token}: the JSON firebase-admin writes for
     * {@link #message(PushContent, String, Instant)}, written directly (firebase-admin's reflective serializer costs
     * more than the rest of a send). {@code FcmPayloadsTest} holds the two equal for every kind of push.
     */
    public static byte[] json(PushContent content, String token, Instant now) {
        ByteArrayOutputStream out = new ByteArrayOutputStream(256 + 64 * content.data().size());
        try (JsonGenerator json = JSON.createGenerator(out)) {
            json.writeStartObject();
            json.writeObjectFieldStart("message");
            json.writeStringField("token", token);
            writeNotificationAndData(content, json);
            json.writeObjectFieldStart("android");
            json.writeStringField("priority", high(content) ? "high" : "normal");
            json.writeStringField("ttl", ttl(content, now));
            if (content.collapseKey() != null) {
                json.writeStringField("collapse_key", content.collapseKey());
            }
            json.writeEndObject();
            json.writeEndObject();
            json.writeEndObject();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return out.toByteArray();
    }

    /**
     * The payload size FCM's limit applies to, as Herald counts it: the UTF-8 bytes of the compact JSON
     * {@code {"notification":{"title":..,"body":..},"data":{..,"link":..}}} exactly as {@link #message} fills
     * them ({@code notification} only for alerts, {@code data} only when not empty, absent fields left out). The
     * token, {@code android} options and the envelope are not counted, as FCM does not count them. An upper bound of
     * FCM's own count, which sums the keys and values.
     */
    public static int size(PushContent content) {
        CountingStream counter = new CountingStream();
        try (JsonGenerator json = JSON.createGenerator(counter)) {
            json.writeStartObject();
            writeNotificationAndData(content, json);
            json.writeEndObject();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return counter.count;
    }

    private static void writeNotificationAndData(PushContent content, JsonGenerator json) throws IOException {
        if (content.kind() == PushKind.ALERT) {
            json.writeObjectFieldStart("notification");
            json.writeStringField("title", content.title());
            if (content.body() != null) {
                json.writeStringField("body", content.body());
            }
            json.writeEndObject();
        }
        Map<String, String> data = data(content);
        if (!data.isEmpty()) {
            json.writeObjectFieldStart("data");
            for (Map.Entry<String, String> entry : data.entrySet()) {
                json.writeStringField(entry.getKey(), entry.getValue());
            }
            json.writeEndObject();
        }
    }

    static Map<String, String> data(PushContent content) {
        if (content.link() == null) {
            return content.data();
        }
        Map<String, String> data = new LinkedHashMap<>(content.data());
        data.put(LINK_KEY, content.link());
        return data;
    }

    private static AndroidConfig android(PushContent content, Instant now) {
        AndroidConfig.Builder android = AndroidConfig.builder()
                .setPriority(high(content) ? AndroidConfig.Priority.HIGH : AndroidConfig.Priority.NORMAL)
                .setTtl(ttlMillis(content, now));
        if (content.collapseKey() != null) {
            android.setCollapseKey(content.collapseKey());
        }
        return android.build();
    }

    private static boolean high(PushContent content) {
        return content.kind() == PushKind.VOIP || content.priority() == Priority.HIGH;
    }

    /** The time left until {@code expiresAt}, rounded up to whole seconds (a call ringing 30 s gets ttl "30s"). */
    private static long ttlMillis(PushContent content, Instant now) {
        long millis = Math.max(0, Duration.between(now, content.expiresAt()).toMillis());
        return (millis + 999) / 1000 * 1000;
    }

    /** As firebase-admin's {@code AndroidConfig} writes whole seconds: {@code "90s"}. */
    private static String ttl(PushContent content, Instant now) {
        return ttlMillis(content, now) / 1000 + "s";
    }

    /** Counts the bytes written to it. */
    private static final class CountingStream extends OutputStream {
        private int count;

        @Override
        public void write(int b) {
            count++;
        }

        @Override
        public void write(byte[] b, int off, int len) {
            count += len;
        }
    }
}
