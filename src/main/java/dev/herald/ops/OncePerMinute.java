package dev.herald.ops;

import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Keeps a repeated warning quiet: {@link #due()} says yes at most once a minute, so an outage (Redis
 * away, say) is logged once a minute rather than once per failed call. Thread-safe.
 */
public final class OncePerMinute {

    private static final long MINUTE = TimeUnit.MINUTES.toNanos(1);

    private final AtomicLong last = new AtomicLong(System.nanoTime() - 2 * MINUTE);

    /** Whether a minute passed since it last said yes; says yes to one caller only. */
    public boolean due() {
        long now = System.nanoTime();
        long previous = last.get();
        return now - previous > MINUTE && last.compareAndSet(previous, now);
    }
}
