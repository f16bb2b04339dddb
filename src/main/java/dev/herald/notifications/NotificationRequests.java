package dev.herald.notifications;

import com.fasterxml.jackson.databind.JsonNode;
import dev.herald.api.ApiException;
import dev.herald.api.Problem;
import dev.herald.delivery.Priority;

import java.time.Duration;
import java.time.Instant;
import java.time.OffsetDateTime;
import java.time.format.DateTimeParseException;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

/**
 * Turns a body that passed {@code notification-request.schema.json} into a {@link NotificationRequest},
 * checking what a schema cannot say: title or data, reserved data keys, how far ahead {@code sendAt} is.
 * Every refusal is a 400 naming the field.
 */
final class NotificationRequests {

    /** How far ahead a notification may be scheduled. */
    static final Duration MAX_SCHEDULE = Duration.ofDays(30);

    /**
     * Keys the gateways reserve: APNs' {@code aps} dictionary, FCM's {@code from}, {@code notification},
     * {@code message_type} and the {@code google.} / {@code gcm.} prefixes
     * (https://firebase.google.com/docs/reference/fcm/rest/v1/projects.messages#Message.FIELDS.data).
     */
    private static final Set<String> RESERVED_DATA_KEYS = Set.of("aps", "from", "notification", "message_type",
            "collapse_key");

    private NotificationRequests() {
    }

    static NotificationRequest parse(JsonNode node, Instant now) {
        List<Problem.FieldError> errors = new ArrayList<>();
        // PostgreSQL's jsonb (where the request is kept) cannot hold U+0000, nor can most devices show it
        node.fields().forEachRemaining(field -> {
            if (containsNul(field.getValue())) {
                errors.add(new Problem.FieldError(field.getKey(), "must not contain the character U+0000"));
            }
        });
        Target target = target(node.get("to"));
        LocalizedText title = text(node.get("title"));
        LocalizedText body = text(node.get("body"));
        Map<String, String> data = new LinkedHashMap<>();
        JsonNode dataNode = node.get("data");
        if (dataNode != null) {
            dataNode.fields().forEachRemaining(e -> data.put(e.getKey(), e.getValue().asText()));
        }
        for (String key : data.keySet()) {
            String lower = key.toLowerCase(Locale.ROOT);
            if (RESERVED_DATA_KEYS.contains(lower) || lower.startsWith("google.") || lower.startsWith("gcm.")) {
                errors.add(new Problem.FieldError("data." + key, "is reserved by APNs or FCM"));
            }
        }
        String link = textValue(node, "link");
        if (link != null && data.containsKey("link")) {
            errors.add(new Problem.FieldError("data.link", "clashes with the link field, which is sent as data key 'link'"));
        }
        if (title == null && data.isEmpty()) {
            errors.add(new Problem.FieldError("title", "title or data is required (without a title it is a silent push)"));
        }
        if (title == null && body != null) {
            errors.add(new Problem.FieldError("body", "needs a title: a notification without title is a silent push"));
        }
        Integer badge = null;
        boolean badgeUnread = false;
        JsonNode badgeNode = node.get("badge");
        if (badgeNode != null) {
            if (badgeNode.isTextual()) {
                badgeUnread = true;
            } else {
                badge = badgeNode.intValue();
            }
        }
        Set<Channel> channels = EnumSet.allOf(Channel.class);
        JsonNode channelsNode = node.get("channels");
        if (channelsNode != null) {
            channels = EnumSet.noneOf(Channel.class);
            for (JsonNode c : channelsNode) {
                channels.add(Channel.fromWire(c.asText()));
            }
        }
        Instant sendAt = null;
        String sendAtText = textValue(node, "sendAt");
        if (sendAtText != null) {
            try {
                Instant at = OffsetDateTime.parse(sendAtText).toInstant();
                if (at.isAfter(now.plus(MAX_SCHEDULE))) {
                    errors.add(new Problem.FieldError("sendAt", "must be at most 30 days ahead"));
                } else if (at.isAfter(now)) {
                    sendAt = at;
                }
            } catch (DateTimeParseException e) {
                errors.add(new Problem.FieldError("sendAt", "must be an RFC 3339 time such as 2026-12-24T18:00:00Z"));
            }
        }
        if (!errors.isEmpty()) {
            throw ApiException.invalid(errors);
        }
        String priority = textValue(node, "priority");
        String type = textValue(node, "type");
        return new NotificationRequest(target, textValue(node, "category"), type == null ? "INFO" : type,
                "high".equals(priority) ? Priority.HIGH : Priority.NORMAL, title, body, link, data, badge, badgeUnread,
                textValue(node, "sound"), textValue(node, "collapseKey"),
                node.has("ttlSeconds") ? node.get("ttlSeconds").intValue() : NotificationRequest.DEFAULT_TTL_SECONDS,
                channels, sendAt);
    }

    private static boolean containsNul(JsonNode node) {
        if (node.isTextual()) {
            return node.textValue().indexOf('\u0000') >= 0;
        }
        for (var it = node.fields(); it.hasNext(); ) {
            var field = it.next();
            if (field.getKey().indexOf('\u0000') >= 0 || containsNul(field.getValue())) {
                return true;
            }
        }
        if (node.isArray()) {
            for (JsonNode element : node) {
                if (containsNul(element)) {
                    return true;
                }
            }
        }
        return false;
    }

    private static Target target(JsonNode to) {
        Iterator<Map.Entry<String, JsonNode>> fields = to.fields();
        Map.Entry<String, JsonNode> only = fields.next();
        Target.Kind kind = switch (only.getKey()) {
            case "users" -> Target.Kind.USERS;
            case "devices" -> Target.Kind.DEVICES;
            default -> Target.Kind.TAGS;
        };
        Set<String> ids = new LinkedHashSet<>();
        only.getValue().forEach(id -> ids.add(id.asText()));
        return new Target(kind, new ArrayList<>(ids));
    }

    private static LocalizedText text(JsonNode node) {
        if (node == null) {
            return null;
        }
        if (node.isTextual()) {
            return LocalizedText.of(node.asText());
        }
        Map<String, String> byLocale = new LinkedHashMap<>();
        node.fields().forEachRemaining(e -> byLocale.put(e.getKey(), e.getValue().asText()));
        return new LocalizedText(byLocale);
    }

    private static String textValue(JsonNode node, String field) {
        JsonNode value = node.get(field);
        return value == null || value.isNull() ? null : value.asText();
    }
}
