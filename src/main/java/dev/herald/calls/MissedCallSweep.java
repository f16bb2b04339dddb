package dev.herald.calls;

import dev.herald.delivery.WorkSignal;
import io.micronaut.context.annotation.Context;
import io.micronaut.context.annotation.Requires;
import io.micronaut.context.annotation.Value;
import io.micronaut.scheduling.annotation.Scheduled;
import jakarta.annotation.PreDestroy;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.time.Clock;
import java.time.Duration;
import java.time.Instant;

/**
 * Ends calls whose ring time ran out, on every node: it wakes when the earliest ringing call's time is
 * up, and at least every {@code herald.calls.sweep} (a call rung since, on any node, rings at least 5 s,
 * so it is ended at most that late). Each call is ended by exactly one node (see
 * {@link CallService#endTimedOut}). It also sends again the call.ended of calls whose node died before
 * recording its outcomes ({@link CallService#resendStuckEnds}), and forgets calls a week after they ended.
 */
@Context
@Requires(property = "herald.calls.sweeper", notEquals = "false")
class MissedCallSweep implements AutoCloseable {

    private static final Logger LOG = LoggerFactory.getLogger(MissedCallSweep.class);
    private static final int BATCH = 100;

    private final CallService calls;
    private final Clock clock;
    private final Duration every;
    private final WorkSignal wake = new WorkSignal();
    private final Thread thread;
    private volatile boolean running = true;

    MissedCallSweep(CallService calls, Clock clock, @Value("${herald.calls.sweep:1s}") Duration every) {
        this.calls = calls;
        this.clock = clock;
        this.every = every;
        this.thread = new Thread(this::loop, "missed-calls");
        thread.setDaemon(true);
        thread.start();
    }

    private void loop() {
        Duration pause = Duration.ZERO;
        while (running) {
            try {
                wake.await(pause);
                if (!running) {
                    return;
                }
                int ended = calls.endTimedOut(BATCH);
                calls.resendStuckEnds();
                if (ended == BATCH) {
                    pause = Duration.ZERO;
                    continue;
                }
                Instant now = clock.instant();
                Duration untilNext = calls.nextRingEnd().map(t -> Duration.between(now, t)).orElse(every);
                pause = untilNext.isNegative() ? Duration.ZERO : untilNext.compareTo(every) < 0 ? untilNext : every;
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            } catch (RuntimeException e) {
                // PostgreSQL away: try again after a while; the calls wait in the table, not here
                LOG.warn("Ending timed-out calls failed, trying again in {}: {}", every, e.toString());
                pause = every;
            }
        }
    }

    @Scheduled(initialDelay = "10m", fixedDelay = "1h")
    void forgetOldCalls() {
        int forgotten = calls.forgetOld();
        if (forgotten > 0) {
            LOG.info("Forgot {} calls that ended more than {} days ago", forgotten, CallService.RETENTION.toDays());
        }
    }

    @PreDestroy
    @Override
    public void close() {
        running = false;
        wake.signal();
        try {
            thread.join(5_000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
