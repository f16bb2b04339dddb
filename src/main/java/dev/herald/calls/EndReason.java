package dev.herald.calls;

import java.util.Locale;
import java.util.Optional;

/** Why a call stopped ringing: the three a {@code DELETE} may give, or its ring time running out. */
enum EndReason {
    ANSWERED, DECLINED, CANCELLED, TIMEOUT;

    String wire() {
        return name().toLowerCase(Locale.ROOT);
    }

    /** A reason a client may give ({@code timeout} is Herald's own). */
    static Optional<EndReason> fromClient(String value) {
        for (EndReason reason : values()) {
            if (reason != TIMEOUT && reason.wire().equals(value)) {
                return Optional.of(reason);
            }
        }
        return Optional.empty();
    }

    static EndReason fromWire(String value) {
        return valueOf(value.toUpperCase(Locale.ROOT));
    }
}
