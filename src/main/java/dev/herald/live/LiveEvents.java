package dev.herald.live;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.datatype.jsr310.JavaTimeModule;

/** The JSON of live events, as the inbox API writes the same things. */
public final class LiveEvents {

    private static final ObjectMapper JSON = new ObjectMapper().registerModule(new JavaTimeModule())
            .disable(SerializationFeature.WRITE_DATES_AS_TIMESTAMPS);

    private LiveEvents() {
    }

    /** The string that {@link #spliced} replaces (NUL, which JSON writes as an escape and no id contains). */
    public static final String SLOT = "\u0000";

    /**
     * JSON written once for many values that differ only in their first field, a string: {@code value}
     * holds {@link #SLOT} there, and {@link Spliced#with} puts each value's own in its place (a fan-out's
     * events differ only in their inbox ids).
     */
    public static Spliced spliced(Object value) {
        String json = json(value);
        int slot = json.indexOf("\\u0000");
        if (slot < 0) {
            throw new IllegalArgumentException("no slot in " + value);
        }
        return new Spliced(json.substring(0, slot), json.substring(slot + 6));
    }

    /** See {@link #spliced}. */
    public record Spliced(String before, String after) {
        /** The JSON with {@code first} (characters that JSON keeps as they are) in the slot. */
        public String with(String first) {
            return before + first + after;
        }
    }

    public static String json(Object value) {
        try {
            return JSON.writeValueAsString(value);
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }
}
