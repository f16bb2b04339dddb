package dev.herald.auth;

import java.util.Locale;
import java.util.Optional;

/** What an app key may do. */
public enum Scope {
    SEND, CALLS, USERS, ADMIN;

    public String wire() {
        return name().toLowerCase(Locale.ROOT);
    }

    public static Optional<Scope> fromWire(String value) {
        for (Scope scope : values()) {
            if (scope.wire().equals(value)) {
                return Optional.of(scope);
            }
        }
        return Optional.empty();
    }
}
