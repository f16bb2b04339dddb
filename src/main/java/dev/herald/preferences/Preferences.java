package dev.herald.preferences;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.herald.api.ApiException;
import dev.herald.api.Problem;
import dev.herald.notifications.Channel;

import java.time.DateTimeException;
import java.time.Instant;
import java.time.LocalTime;
import java.time.ZoneId;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * One user's preferences, as {@code preferences.schema.json} describes them, with every default
 * filled in: every channel on, no email address, locale {@code en}, timezone {@code UTC}, no quiet
 * hours. Immutable.
 *
 * @param channels   push, inApp and email: on or off
 * @param categories per category, the channels it overrides
 * @param quietStart quiet hours' start in {@code timezone}, or null for none (then {@code quietEnd} is null too)
 */
public record Preferences(Map<Channel, Boolean> channels, Map<String, Map<Channel, Boolean>> categories, String email,
                          String locale, ZoneId timezone, LocalTime quietStart, LocalTime quietEnd) {

    /** The channels a user controls. */
    public static final List<Channel> CONTROLLED = List.of(Channel.PUSH, Channel.IN_APP, Channel.EMAIL);
    public static final String DEFAULT_LOCALE = "en";

    public static final Preferences DEFAULTS = new Preferences(Map.of(), Map.of(), null, DEFAULT_LOCALE,
            ZoneId.of("UTC"), null, null);

    public Preferences {
        channels = Map.copyOf(channels);
        Map<String, Map<Channel, Boolean>> copy = new LinkedHashMap<>();
        categories.forEach((k, v) -> copy.put(k, Map.copyOf(v)));
        categories = java.util.Collections.unmodifiableMap(copy);
    }

    /** Whether a notification of {@code category} (may be null) may use {@code channel}. */
    public boolean allows(Channel channel, String category) {
        if (category != null) {
            Map<Channel, Boolean> override = categories.get(category);
            if (override != null && override.containsKey(channel)) {
                return override.get(channel);
            }
        }
        return channels.getOrDefault(channel, true);
    }

    /** Whether {@code now} falls in the user's quiet hours (start inclusive, end exclusive, across midnight when start > end). */
    public boolean quietAt(Instant now) {
        if (quietStart == null) {
            return false;
        }
        LocalTime t = now.atZone(timezone).toLocalTime();
        if (quietStart.isBefore(quietEnd)) {
            return !t.isBefore(quietStart) && t.isBefore(quietEnd);
        }
        return !t.isBefore(quietStart) || t.isBefore(quietEnd);
    }

    /**
     * Reads a document that passed {@code preferences.schema.json}, checking what the schema cannot:
     * the timezone is a known IANA zone, quiet hours do not start when they end. 400 naming the field.
     */
    public static Preferences read(JsonNode doc) {
        List<Problem.FieldError> errors = new ArrayList<>();
        Map<Channel, Boolean> channels = channels(doc.path("channels"));
        Map<String, Map<Channel, Boolean>> categories = new LinkedHashMap<>();
        doc.path("categories").fields().forEachRemaining(e -> categories.put(e.getKey(), channels(e.getValue())));
        String email = text(doc, "email");
        String locale = text(doc, "locale");
        ZoneId zone = ZoneId.of("UTC");
        String tz = text(doc, "timezone");
        if (tz != null) {
            try {
                zone = ZoneId.of(tz);
            } catch (DateTimeException e) {
                errors.add(new Problem.FieldError("timezone", "must be an IANA time zone id such as Europe/Paris"));
            }
        }
        LocalTime start = null;
        LocalTime end = null;
        JsonNode quiet = doc.path("quietHours");
        if (quiet.isObject()) {
            start = LocalTime.parse(quiet.path("start").asText());
            end = LocalTime.parse(quiet.path("end").asText());
            if (start.equals(end)) {
                errors.add(new Problem.FieldError("quietHours.end", "must differ from start"));
            }
        }
        if (!errors.isEmpty()) {
            throw ApiException.invalid(errors);
        }
        return new Preferences(channels, categories, email, locale == null ? DEFAULT_LOCALE : locale, zone, start, end);
    }

    /** The document as GET answers it, every default filled in. */
    public ObjectNode toJson() {
        ObjectNode doc = JsonNodeFactory.instance.objectNode();
        ObjectNode ch = doc.putObject("channels");
        for (Channel c : CONTROLLED) {
            ch.put(c.wire(), channels.getOrDefault(c, true));
        }
        ObjectNode cats = doc.putObject("categories");
        categories.forEach((name, override) -> {
            ObjectNode o = cats.putObject(name);
            for (Channel c : CONTROLLED) {
                if (override.containsKey(c)) {
                    o.put(c.wire(), override.get(c));
                }
            }
        });
        doc.put("email", email);
        doc.put("locale", locale);
        doc.put("timezone", timezone.getId());
        if (quietStart == null) {
            doc.putNull("quietHours");
        } else {
            doc.putObject("quietHours").put("start", quietStart.toString()).put("end", quietEnd.toString());
        }
        return doc;
    }

    private static Map<Channel, Boolean> channels(JsonNode node) {
        Map<Channel, Boolean> map = new EnumMap<>(Channel.class);
        for (Channel c : CONTROLLED) {
            if (node.has(c.wire())) {
                map.put(c, node.get(c.wire()).asBoolean());
            }
        }
        return map;
    }

    private static String text(JsonNode doc, String field) {
        JsonNode n = doc.get(field);
        return n == null || n.isNull() ? null : n.asText();
    }
}
