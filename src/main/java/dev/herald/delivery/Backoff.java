package dev.herald.delivery;

import java.time.Duration;
import java.util.concurrent.ThreadLocalRandom;

/**
 * When to try a push again after a passing failure: exponential (1 s, 2 s, 4 s … at most 10 min) with
 * jitter (a random point in the upper half of the step, so retries of one outage spread out), and
 * never sooner than the gateway's {@code Retry-After}.
 */
public final class Backoff {

    static final Duration FIRST = Duration.ofSeconds(1);
    static final Duration LONGEST = Duration.ofMinutes(10);

    private Backoff() {
    }

    /** The wait before attempt {@code attempts + 1}, after {@code attempts} tries (at least 1). */
    public static Duration after(int attempts, Duration retryAfter) {
        return after(attempts, retryAfter, LONGEST);
    }

    /** As {@link #after(int, Duration)}, the step growing to at most {@code longest}. */
    public static Duration after(int attempts, Duration retryAfter, Duration longest) {
        long stepMillis = FIRST.toMillis() << Math.min(Math.max(attempts - 1, 0), 20);
        stepMillis = Math.min(stepMillis, longest.toMillis());
        long jittered = stepMillis / 2 + ThreadLocalRandom.current().nextLong(stepMillis / 2 + 1);
        Duration wait = Duration.ofMillis(jittered);
        return retryAfter != null && retryAfter.compareTo(wait) > 0 ? retryAfter : wait;
    }
}
