package dev.herald.api;

import java.nio.charset.StandardCharsets;
import java.util.Base64;

/** Opaque paging cursors and the {@code limit} rule shared by every list endpoint. */
public final class Cursors {

    public static final int DEFAULT_LIMIT = 20;
    public static final int MAX_LIMIT = 100;
    private static final String VERSION = "1:";

    private Cursors() {
    }

    public static String encode(String position) {
        return Base64.getUrlEncoder().withoutPadding()
                .encodeToString((VERSION + position).getBytes(StandardCharsets.UTF_8));
    }

    /** The position a cursor stands for, or null for the first page; 400 {@code cursor} when it is not ours. */
    public static String decode(String cursor) {
        if (cursor == null || cursor.isEmpty()) {
            return null;
        }
        try {
            String decoded = new String(Base64.getUrlDecoder().decode(cursor), StandardCharsets.UTF_8);
            if (decoded.startsWith(VERSION)) {
                return decoded.substring(VERSION.length());
            }
        } catch (IllegalArgumentException ignored) {
            // falls through to the 400 below
        }
        throw ApiException.invalid("cursor", "is not a cursor this list gave out");
    }

    /** {@code limit} as given (default 20); 400 when outside 1 to 100. */
    public static int limit(Integer limit) {
        if (limit == null) {
            return DEFAULT_LIMIT;
        }
        if (limit < 1 || limit > MAX_LIMIT) {
            throw ApiException.invalid("limit", "must be between 1 and " + MAX_LIMIT);
        }
        return limit;
    }
}
