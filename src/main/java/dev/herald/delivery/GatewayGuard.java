package dev.herald.delivery;

import io.github.resilience4j.circuitbreaker.CircuitBreaker;
import io.github.resilience4j.circuitbreaker.CircuitBreakerConfig;

import java.time.Duration;
import java.util.Queue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Supplier;

/**
 * The bulkhead and circuit breaker in front of one gateway client (one app's APNs or FCM credential).
 *
 * <p>At most {@code maxInFlight} pushes are with the gateway at once; further pushes wait in a queue
 * without holding a thread. When most recent pushes ended in {@link PushResult.Retry} (the gateway is
 * down, or this credential is throttled), the circuit opens: pushes are answered
 * {@code Retry("circuit_open")} at once, without touching the gateway, until a few trial pushes pass.
 * Rejections and dead tokens count as a healthy gateway. Thread-safe.
 */
public final class GatewayGuard {

    private static final String CIRCUIT_OPEN = "circuit_open";

    private final int maxInFlight;
    private final AtomicInteger inFlight = new AtomicInteger();
    private final AtomicInteger drainRequests = new AtomicInteger();
    private final Queue<Waiting> waiting = new ConcurrentLinkedQueue<>();
    private final Queue<Waiting> urgent = new ConcurrentLinkedQueue<>();
    private final CircuitBreaker breaker;
    private final Duration openFor;
    private final Runnable onRecovered;
    /** Whether pushes were turned away as {@code gateway_stalled} since the gateway last answered one. */
    private volatile boolean stalled;

    public GatewayGuard(String name, int maxInFlight, Duration openFor) {
        this(name, maxInFlight, openFor, () -> { });
    }

    /**
     * As {@link #GatewayGuard(String, int, Duration)}; {@code onRecovered} runs when the gateway is back
     * after an outage: the circuit closes again (its trial pushes passed), or a gateway that hung
     * (pushes were turned away as stalled) answers again; on the thread that completed that push: it
     * must not block.
     */
    public GatewayGuard(String name, int maxInFlight, Duration openFor, Runnable onRecovered) {
        if (maxInFlight < 1) {
            throw new IllegalArgumentException("maxInFlight must be at least 1, was " + maxInFlight);
        }
        this.maxInFlight = maxInFlight;
        this.openFor = openFor;
        this.onRecovered = onRecovered;
        this.breaker = CircuitBreaker.of(name, CircuitBreakerConfig.custom()
                .slidingWindowType(CircuitBreakerConfig.SlidingWindowType.COUNT_BASED)
                .slidingWindowSize(50)
                .minimumNumberOfCalls(20)
                .failureRateThreshold(50)
                .waitDurationInOpenState(openFor)
                .permittedNumberOfCallsInHalfOpenState(5)
                .automaticTransitionFromOpenToHalfOpenEnabled(false)
                .build());
        breaker.getEventPublisher().onStateTransition(event -> {
            if (event.getStateTransition() == CircuitBreaker.StateTransition.HALF_OPEN_TO_CLOSED) {
                onRecovered.run();
            }
        });
    }

    /** How long a push may wait for a slot; after that it is answered {@code Retry("queue_timeout")} unsent. */
    static final Duration MAX_WAIT = Duration.ofSeconds(15);
    /**
     * When the push at the head of the queue has waited this long, the gateway is not taking pushes
     * (it hangs): new ones are answered {@code Retry("gateway_stalled")} at once instead of joining the
     * queue, so a hung gateway holds at most its slots and this much of the node's pushes in flight,
     * and the other gateways keep theirs. A slow gateway that still moves keeps its queue shorter.
     */
    static final Duration STALLED_AFTER = Duration.ofSeconds(2);

    /** A push waiting for a slot, since {@code queuedAt} (nanoTime). */
    private record Waiting(long queuedAt, Runnable start) {
    }
    /**
     * How long an urgent push (a call) may wait for a slot: less than a call's deadline, so a call the
     * caller was told failed never rings later.
     */
    static final Duration MAX_URGENT_WAIT = Duration.ofSeconds(2);

    /**
     * Sends through the guard; {@code send} is called when a slot is free and the circuit allows it. A
     * push that waited longer than {@link #MAX_WAIT} is not sent (whoever asked has likely given up on
     * it and will try again), so a slow gateway cannot make one push go out twice.
     */
    public CompletableFuture<PushResult> call(Supplier<CompletableFuture<PushResult>> send) {
        return call(send, false);
    }

    /** As {@link #call(Supplier)}; an {@code urgent} push goes ahead of every waiting non-urgent one. */
    public CompletableFuture<PushResult> call(Supplier<CompletableFuture<PushResult>> send, boolean urgent) {
        CompletableFuture<PushResult> answer = new CompletableFuture<>();
        long queuedAt = System.nanoTime();
        if (!urgent) {
            Waiting head = waiting.peek();
            if (head != null && queuedAt - head.queuedAt() > STALLED_AFTER.toNanos()) {
                stalled = true;
                answer.complete(new PushResult.Retry("gateway_stalled", null));
                return answer;
            }
        }
        long maxWait = (urgent ? MAX_URGENT_WAIT : MAX_WAIT).toNanos();
        (urgent ? this.urgent : waiting).add(new Waiting(queuedAt, () -> {
            if (System.nanoTime() - queuedAt > maxWait) {
                finish(answer, new PushResult.Retry("queue_timeout", null));
            } else {
                start(send, answer);
            }
        }));
        drain();
        return answer;
    }

    /** Whether the circuit is open (pushes are being answered {@code Retry} without being sent). */
    public boolean open() {
        return breaker.getState() == CircuitBreaker.State.OPEN;
    }

    public int inFlight() {
        return inFlight.get();
    }

    /** Starts waiting pushes while slots are free; one thread drains at a time, others leave it a note. */
    private void drain() {
        if (drainRequests.getAndIncrement() != 0) {
            return;
        }
        do {
            while (inFlight.get() < maxInFlight) {
                Waiting next = urgent.poll();
                if (next == null) {
                    next = waiting.poll();
                }
                if (next == null) {
                    break;
                }
                inFlight.incrementAndGet();
                next.start().run();
            }
        } while (drainRequests.decrementAndGet() != 0);
    }

    private void start(Supplier<CompletableFuture<PushResult>> send, CompletableFuture<PushResult> answer) {
        if (!breaker.tryAcquirePermission()) {
            finish(answer, new PushResult.Retry(CIRCUIT_OPEN, openFor));
            return;
        }
        long started = System.nanoTime();
        CompletableFuture<PushResult> sent;
        try {
            sent = send.get();
        } catch (RuntimeException e) {
            sent = CompletableFuture.completedFuture(new PushResult.Retry("send_failed", null));
        }
        sent.whenComplete((result, failure) -> {
            PushResult outcome = failure != null ? new PushResult.Retry("send_failed", null) : result;
            long elapsed = System.nanoTime() - started;
            if (outcome instanceof PushResult.Retry) {
                breaker.onError(elapsed, TimeUnit.NANOSECONDS, new GatewayUnavailable(((PushResult.Retry) outcome).reason()));
            } else {
                breaker.onSuccess(elapsed, TimeUnit.NANOSECONDS);
                if (stalled) {
                    // it answers again after hanging (a hang opens no circuit: nothing came back to count)
                    stalled = false;
                    onRecovered.run();
                }
            }
            finish(answer, outcome);
        });
    }

    private void finish(CompletableFuture<PushResult> answer, PushResult result) {
        inFlight.decrementAndGet();
        answer.complete(result);
        drain();
    }

    /** What the breaker counts as a failed call: the gateway answered {@link PushResult.Retry}. */
    private static final class GatewayUnavailable extends RuntimeException {
        GatewayUnavailable(String reason) {
            super(reason, null, false, false);
        }
    }
}
