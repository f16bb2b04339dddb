package dev.herald.apns;

import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.herald.delivery.PushContent;
import dev.herald.delivery.PushKind;

import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.TreeMap;

/**
 * APNs JSON payloads for {@link PushContent}. Pure functions; thread-safe.
 *
 * <ul>
 *   <li>{@code ALERT}: {@code aps.alert.title}, {@code aps.alert.body} (when set), {@code aps.badge} and
 *       {@code aps.sound} when set.</li>
 *   <li>{@code BACKGROUND}: {@code aps.content-available: 1} and {@code aps.badge} when set, nothing
 *       the user would see (no alert, no sound), as
 *       <a href="https://developer.apple.com/documentation/usernotifications/pushing-background-updates-to-your-app">
 *       Pushing background updates to your App</a> asks.</li>
 *   <li>{@code VOIP}: an empty {@code aps}; PushKit hands the whole payload to the app, which reads the
 *       custom keys.</li>
 * </ul>
 *
 * In every kind, the {@code data} entries are top-level keys beside {@code aps} (in key order), and
 * {@code link}, when set, is the key {@code link} (it wins over a data entry of that name). A data
 * entry named {@code aps} is left out: APNs' own dictionary cannot be replaced.
 */
public final class ApnsPayloads {

    /**
     * The largest payload APNs accepts for a regular push, in bytes: "The maximum size of a notification
     * payload is 4 KB (4096 bytes)", see
     * <a href="https://developer.apple.com/documentation/usernotifications/generating-a-remote-notification">
     * Generating a remote notification</a> and
     * <a href="https://developer.apple.com/documentation/usernotifications/sending-notification-requests-to-apns">
     * Sending notification requests to APNs</a>.
     */
    public static final int MAX_PAYLOAD_BYTES = 4096;

    /** The largest VoIP payload APNs accepts, in bytes ("5 KB (5120 bytes)"), same pages as {@link #MAX_PAYLOAD_BYTES}. */
    public static final int MAX_VOIP_PAYLOAD_BYTES = 5120;

    private static final JsonNodeFactory JSON = JsonNodeFactory.instance;

    private ApnsPayloads() {
    }

    /** The JSON payload APNs should carry for this content. */
    public static String payload(PushContent c) {
        ObjectNode root = JSON.objectNode();
        ObjectNode aps = root.putObject("aps");
        switch (c.kind()) {
            case ALERT -> {
                ObjectNode alert = aps.putObject("alert");
                alert.put("title", c.title());
                if (c.body() != null) {
                    alert.put("body", c.body());
                }
                putBadge(aps, c);
                if (c.sound() != null) {
                    aps.put("sound", c.sound());
                }
            }
            case BACKGROUND -> {
                aps.put("content-available", 1);
                putBadge(aps, c);
            }
            case VOIP -> {
                // PushKit payloads are free-form: the app reads the custom keys
            }
        }
        for (Map.Entry<String, String> entry : new TreeMap<>(c.data()).entrySet()) {
            if (!"aps".equals(entry.getKey())) {
                root.put(entry.getKey(), entry.getValue());
            }
        }
        if (c.link() != null) {
            root.put("link", c.link());
        }
        return root.toString();
    }

    /** The payload's size in bytes (UTF-8), to compare with {@link #maxBytes(PushKind)}. */
    public static int size(PushContent c) {
        return payload(c).getBytes(StandardCharsets.UTF_8).length;
    }

    /** The largest payload APNs accepts for this kind of push. */
    public static int maxBytes(PushKind kind) {
        return kind == PushKind.VOIP ? MAX_VOIP_PAYLOAD_BYTES : MAX_PAYLOAD_BYTES;
    }

    private static void putBadge(ObjectNode aps, PushContent c) {
        if (c.badge() != null) {
            aps.put("badge", c.badge());
        }
    }
}
