package dev.herald.fcm;

import java.time.Instant;

/**
 * What {@link FcmSender} keeps for one app: a working client for one version of its credentials, or the note that
 * this version's service account is unusable (so it is not parsed again for every push).
 */
sealed interface FcmClient permits FcmApp, FcmClient.BadCredentials {

    /** The credentials version this client was built from. */
    Instant version();

    /** Releases the client; pushes in flight still complete. Idempotent. */
    void close();

    /** A service account that cannot be made into credentials: every push is {@code Rejected("bad_credentials")}. */
    record BadCredentials(Instant version) implements FcmClient {

        static final String REASON = "bad_credentials";

        @Override
        public void close() {
        }
    }
}
