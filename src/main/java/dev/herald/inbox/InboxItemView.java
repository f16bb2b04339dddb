package dev.herald.inbox;

import io.micronaut.core.annotation.Nullable;
import io.micronaut.serde.annotation.Serdeable;

import java.time.Instant;
import java.util.Map;

/** One inbox item as the inbox API and the live stream show it, in the user's locale. */
@Serdeable
public record InboxItemView(String id, String notificationId, String app, @Nullable String category, String type,
                            @Nullable String title, @Nullable String body, @Nullable String link, Map<String, String> data,
                            @Nullable Instant readAt, Instant createdAt) {

    public static final String PREFIX = "inb_";

    public static InboxItemView of(InboxStore.Item item) {
        return new InboxItemView(PREFIX + item.id(), item.notificationId(), item.appId(), item.category(), item.type(),
                item.title(), item.body(), item.link(), item.data(), item.readAt(), item.createdAt());
    }

    /** The stored id of a client's item id, or -1 when it is not one Herald gave out. */
    public static long parseId(String id) {
        if (id == null || !id.startsWith(PREFIX) || id.length() > PREFIX.length() + 19) {
            return -1;
        }
        try {
            long n = Long.parseLong(id.substring(PREFIX.length()));
            return n > 0 ? n : -1;
        } catch (NumberFormatException e) {
            return -1;
        }
    }
}
