package dev.herald.delivery;

import java.time.Clock;
import java.util.ArrayList;
import java.util.List;

/**
 * The outcomes of pushes sent before their deliveries exist (a {@link FanOut} chunk, a notification
 * {@link PushesFirst} sends), as they come in from any thread: each becomes its delivery row, and
 * {@link #allIn} runs once, when the last is in and the sending itself is over.
 */
abstract class UnwrittenOutcomes {

    final List<PushDispatcher.Settled> settled = new ArrayList<>();
    final List<DeliveryStore.DeadToken> dead = new ArrayList<>();
    private final Clock clock;
    /** Outcomes to wait for, and one for the sending itself. */
    private int waiting = 1;

    UnwrittenOutcomes(Clock clock) {
        this.clock = clock;
    }

    /** Keeps a push's delivery row; called under this object's lock. */
    abstract void record(DeliveryStore.ClaimedPush push, DeliveryStore.Outcome row);

    /** Runs once, on the thread that brought the last outcome in (or ended the sending). */
    abstract void allIn();

    synchronized void expect(int outcomes) {
        waiting += outcomes;
    }

    /** A push's outcome (null: the dispatcher never settled it, so it is tried again). */
    void settle(DeliveryStore.ClaimedPush push, PushDispatcher.Settled outcome) {
        synchronized (this) {
            record(push, DeliveryStore.Outcome.of(push, outcome, clock.instant()));
            if (outcome != null) {
                settled.add(outcome);
                if (outcome.deadToken() != null) {
                    dead.add(outcome.deadToken());
                }
            }
        }
        sent();
    }

    /** One outcome (or the sending) less to wait for. */
    void sent() {
        boolean done;
        synchronized (this) {
            done = --waiting == 0;
        }
        if (done) {
            allIn();
        }
    }
}
