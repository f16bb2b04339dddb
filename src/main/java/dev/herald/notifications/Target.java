package dev.herald.notifications;

import java.util.List;
import java.util.Objects;

/**
 * Whom a notification is for: users (the whole routing), or devices or tags of the app (a push on
 * exactly those devices). {@code ids} are distinct, in the order first given, at most 10,000.
 */
public record Target(Kind kind, List<String> ids) {

    public static final int MAX_IDS = 10_000;

    public enum Kind {
        USERS("users"), DEVICES("devices"), TAGS("tags");

        private final String wire;

        Kind(String wire) {
            this.wire = wire;
        }

        public String wire() {
            return wire;
        }
    }

    public Target {
        Objects.requireNonNull(kind, "kind");
        ids = List.copyOf(ids);
        if (ids.isEmpty() || ids.size() > MAX_IDS) {
            throw new IllegalArgumentException("a target names 1 to " + MAX_IDS + " ids, not " + ids.size());
        }
    }
}
