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
    private final Queue<Runnable> waiting = new ConcurrentLinkedQueue<>();
    private final Queue<Runnable> urgent = new ConcurrentLinkedQueue<>();
    private final CircuitBreaker breaker;
    private final Duration openFor;

    public GatewayGuard(String name, int maxInFlight, Duration openFor) {
        this(name, maxInFlight, openFor, () -> { });
    }

    /**
     * As {@link #GatewayGuard(String, int, Duration)}; {@code onRecovered} runs when the circuit closes
     * again after the gateway was down (its trial pushes passed), on the thread that completed the last
     * of them: it must not block.
     */
    public GatewayGuard(String name, int maxInFlight, Duration openFor, Runnable onRecovered) {
        if (maxInFlight < 1) {
            throw new IllegalArgumentException("maxInFlight must be at least 1, was " + maxInFlight);
        }
        this.maxInFlight = maxInFlight;
        this.openFor = openFor;
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
        long maxWait = (urgent ? MAX_URGENT_WAIT : MAX_WAIT).toNanos();
        (urgent ? this.urgent : waiting).add(() -> {
            if (System.nanoTime() - queuedAt > maxWait) {
                finish(answer, new PushResult.Retry("queue_timeout", null));
            } else {
                start(send, answer);
            }
        });
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
                Runnable next = urgent.poll();
                if (next == null) {
                    next = waiting.poll();
                }
                if (next == null) {
                    break;
                }
                inFlight.incrementAndGet();
                next.run();
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
