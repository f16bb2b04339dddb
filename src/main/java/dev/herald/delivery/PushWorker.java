package dev.herald.delivery;

import io.micrometer.core.instrument.MeterRegistry;
import io.micronaut.context.annotation.Context;
import io.micronaut.context.annotation.Requires;
import io.micronaut.context.annotation.Value;
import jakarta.annotation.PreDestroy;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;

import dev.herald.notifications.StoredNotification;

/**
 * Sends queued pushes. One thread claims due deliveries in batches and hands each to the
 * {@link PushDispatcher} without waiting for the gateways (at most {@code herald.delivery.in-flight}
 * at once); another writes what the gateways said back in bulk, clears dead tokens and counts
 * outcomes. A claim is a lease: if this node dies, its claimed pushes fall due again after
 * {@link #LEASE} and another node sends them (at least once; the APNs id is the same).
 */
@Context
@Requires(property = "herald.delivery.enabled", notEquals = "false")
public class PushWorker implements AutoCloseable {

    private static final Logger LOG = LoggerFactory.getLogger(PushWorker.class);
    /** How long a claimed push is this node's: a node that dies leaves it to the others after this. */
    public static final Duration LEASE = PushDispatcher.SEND_DEADLINE.plusSeconds(30);
    private static final int CLAIM_BATCH = 500;
    private static final int WRITE_BATCH = 1_000;
    /** How long the outcome writer waits for more outcomes to write with the first, and for how many. */
    static final Duration LINGER = Duration.ofMillis(20);
    private static final int LINGER_BATCH = 250;

    private final DeliveryStore store;
    private final NotificationPlans plans;
    private final PushDispatcher dispatcher;
    private final WorkSignals signals;
    private final Clock clock;
    private final MeterRegistry meters;
    private final Duration poll;
    private final int maxInFlight;
    private final Semaphore capacity;
    private final BlockingQueue<PushDispatcher.Settled> settled = new LinkedBlockingQueue<>();
    private final Thread claimer;
    private final List<Thread> writers = new ArrayList<>();
    private volatile boolean running = true;

    PushWorker(DeliveryStore store, NotificationPlans plans, PushDispatcher dispatcher, WorkSignals signals,
               Clock clock, MeterRegistry meters,
               @Value("${herald.delivery.in-flight:5000}") int inFlight,
               @Value("${herald.delivery.poll:500ms}") Duration poll,
               @Value("${herald.delivery.result-writers:1}") int resultWriters) {
        this.store = store;
        this.plans = plans;
        this.dispatcher = dispatcher;
        this.signals = signals;
        this.clock = clock;
        this.meters = meters;
        this.poll = poll;
        this.maxInFlight = Math.max(inFlight, CLAIM_BATCH);
        this.capacity = new Semaphore(maxInFlight);
        io.micrometer.core.instrument.Gauge.builder("herald.push.in_flight", capacity, c -> this.maxInFlight - c.availablePermits())
                .description("Pushes this node holds (claimed and not yet written back); the rest wait in PostgreSQL")
                .register(meters);
        signals.listen();
        claimer = new Thread(this::claimLoop, "push-claimer");
        for (int i = 0; i < Math.max(1, resultWriters); i++) {
            Thread writer = new Thread(this::writeLoop, "push-results-" + i);
            writer.setDaemon(true);
            writers.add(writer);
        }
        claimer.setDaemon(true);
        claimer.start();
        writers.forEach(Thread::start);
    }

    private void claimLoop() {
        while (running) {
            try {
                // no more than there is room for, so that what is claimed is sent at once; the room is
                // not held while claiming (pushes handed over meanwhile may take it: then this waits)
                int room = Math.min(CLAIM_BATCH, capacity.availablePermits());
                List<DeliveryStore.ClaimedPush> claimed = room == 0 ? List.of()
                        : store.claimDue(clock.instant(), LEASE, room);
                if (claimed.isEmpty()) {
                    signals.pushes.await(poll);
                    continue;
                }
                capacity.acquire(claimed.size());
                Map<String, NotificationPlans.Plan> byId;
                try {
                    byId = plans.get(claimed.stream()
                            .map(DeliveryStore.ClaimedPush::notificationId).collect(Collectors.toSet()));
                } catch (RuntimeException e) {
                    // not sent: their leases end and they are claimed again
                    capacity.release(claimed.size());
                    throw e;
                }
                dispatcher.prepare(claimed, byId::get);
                for (DeliveryStore.ClaimedPush push : claimed) {
                    NotificationPlans.Plan plan = byId.get(push.notificationId());
                    if (plan == null) {
                        // the notification was deleted with its app: its deliveries went with it
                        capacity.release();
                        continue;
                    }
                    dispatcher.dispatch(push, plan).thenAccept(settled::add);
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            } catch (RuntimeException e) {
                // the database is away: claimed pushes fall due again when their lease ends
                LOG.warn("Claiming pushes failed; retrying shortly: {}", e.toString());
                pause();
            }
        }
    }

    /**
     * Sends pushes this node just routed and leased to itself, once their rows committed: no claim
     * query, no wait for the poll. Never waits for room: pushes that find none among those in flight go
     * back to the queue, due at once, for whichever node has room (counting them against their devices'
     * caps asks Redis, at most {@code DevicePushCap.REDIS_WAIT}). Never throws.
     */
    public void handOff(StoredNotification notification, List<DeliveryStore.ClaimedPush> leased) {
        handOff(List.of(new Routed(notification, leased)), Duration.ZERO);
    }

    /** A notification and the pushes of it leased to this node. */
    public record Routed(StoredNotification notification, List<DeliveryStore.ClaimedPush> leased) {
    }

    /**
     * As {@link #handOff(StoredNotification, List)} for many notifications at once (a batch accepted in
     * one transaction): their pushes are prepared together (one preference read, one round of device-cap
     * counts in Redis) rather than notification by notification.
     */
    public void handOff(List<Routed> routed) {
        handOff(routed, Duration.ZERO);
    }

    /**
     * As {@link #handOff(List)}, but waits up to {@code wait} in all for room (a router's own thread,
     * slowed to the pace the gateways take), well within the pushes' lease.
     */
    void handOff(StoredNotification notification, List<DeliveryStore.ClaimedPush> leased, Duration wait) {
        handOff(List.of(new Routed(notification, leased)), wait);
    }

    private void handOff(List<Routed> routed, Duration wait) {
        // each push's plan under the id it names: every push handed over has one
        Map<String, NotificationPlans.Plan> plansById = new java.util.HashMap<>();
        List<DeliveryStore.ClaimedPush> all = new ArrayList<>();
        for (Routed r : routed) {
            if (!r.leased().isEmpty()) {
                NotificationPlans.Plan plan = plans.remember(r.notification());
                r.leased().forEach(push -> plansById.putIfAbsent(push.notificationId(), plan));
                all.addAll(r.leased());
            }
        }
        if (all.isEmpty()) {
            return;
        }
        long deadline = System.nanoTime() + wait.toNanos();
        for (int from = 0; from < all.size(); from += CLAIM_BATCH) {
            List<DeliveryStore.ClaimedPush> chunk = all.subList(from, Math.min(all.size(), from + CLAIM_BATCH));
            // without a wait, whatever room there is now; with one, room for the whole chunk
            int taken = wait.isZero() ? Math.min(chunk.size(), capacity.availablePermits()) : chunk.size();
            boolean room;
            try {
                room = taken > 0 && capacity.tryAcquire(taken, Math.max(0, deadline - System.nanoTime()),
                        TimeUnit.NANOSECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                room = false;
            }
            if (room && !running) {
                // closing: the writers may already have stopped waiting for pushes in flight
                capacity.release(taken);
                room = false;
            }
            List<DeliveryStore.ClaimedPush> sending = chunk.subList(0, room ? taken : 0);
            List<Long> back = chunk.subList(sending.size(), chunk.size()).stream()
                    .map(DeliveryStore.ClaimedPush::id).toList();
            if (!back.isEmpty()) {
                try {
                    store.releaseLeases(back, clock.instant());
                    signals.wakePushes();
                } catch (RuntimeException e) {
                    LOG.warn("Could not release {} pushes to the queue; they are sent once their lease ends: {}",
                            back.size(), e.toString());
                }
            }
            if (sending.isEmpty()) {
                continue;
            }
            dispatcher.prepare(sending, plansById::get);
            for (DeliveryStore.ClaimedPush push : sending) {
                dispatcher.dispatch(push, plansById.get(push.notificationId())).thenAccept(settled::add);
            }
        }
    }

    /** How many pushes this node holds at most. */
    int inFlight() {
        return maxInFlight;
    }

    /** A notification this node is sending, with its push content per locale built once. */
    NotificationPlans.Plan plan(StoredNotification notification) {
        return plans.remember(notification);
    }

    /** Ids for pushes sent before their delivery exists: negative, unique on this node (see {@link #sendUnwritten}). */
    private final java.util.concurrent.atomic.AtomicLong unwrittenIds = new java.util.concurrent.atomic.AtomicLong();

    /** A push a fan-out sends before its delivery row exists, under an id unique on this node. */
    DeliveryStore.ClaimedPush unwritten(String notificationId, DeliveryStore.Recipient to) {
        return new DeliveryStore.ClaimedPush(unwrittenIds.decrementAndGet(), notificationId, to.userId(),
                to.installationId(), 1, to.platform(), to.token(), to.locale(), null);
    }

    /**
     * Sends pushes that have no delivery row yet (a fan-out writes each row once, with its outcome):
     * each outcome goes to {@code outcome} with its push, and frees its room at once, nothing is
     * written here. Waits for room as long as it takes while this worker runs and {@code keepTrying}
     * says so (a router's thread, kept to the pace the gateways take). Answers how many were sent:
     * fewer than all only when it stopped trying.
     */
    int sendUnwritten(NotificationPlans.Plan plan, List<DeliveryStore.ClaimedPush> pushes,
                      java.util.function.BiConsumer<DeliveryStore.ClaimedPush, PushDispatcher.Settled> outcome,
                      java.util.function.BooleanSupplier keepTrying) {
        int sent = 0;
        while (sent < pushes.size() && running) {
            List<DeliveryStore.ClaimedPush> batch = pushes.subList(sent, Math.min(pushes.size(), sent + CLAIM_BATCH));
            try {
                if (!capacity.tryAcquire(batch.size(), 100, TimeUnit.MILLISECONDS)) {
                    if (!keepTrying.getAsBoolean()) {
                        return sent;
                    }
                    continue;
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return sent;
            }
            if (!running) {
                capacity.release(batch.size());
                return sent;
            }
            dispatchUnwritten(batch, id -> plan, outcome);
            sent += batch.size();
        }
        return sent;
    }

    /**
     * Sends the pushes of notifications routed while accepting, before their deliveries exist (see
     * {@link PushesFirst}), never waiting for room: whole notifications (groups), in order, while there
     * is room for every push of the next one. Outcomes go to {@code outcome} as in {@link #sendUnwritten}.
     * Answers how many of the groups went out; the rest found no room.
     */
    int sendUnwrittenNow(List<List<DeliveryStore.ClaimedPush>> groups,
                         java.util.function.Function<String, NotificationPlans.Plan> plans,
                         java.util.function.BiConsumer<DeliveryStore.ClaimedPush, PushDispatcher.Settled> outcome) {
        int available = capacity.availablePermits();
        int taken = 0;
        int room = 0;
        while (taken < groups.size() && room + groups.get(taken).size() <= available) {
            room += groups.get(taken).size();
            taken++;
        }
        if (room > 0 && !capacity.tryAcquire(room)) {
            return 0; // taken by another thread meanwhile
        }
        if (!running) {
            capacity.release(room);
            return 0;
        }
        List<DeliveryStore.ClaimedPush> sending = new ArrayList<>(room);
        groups.subList(0, taken).forEach(sending::addAll);
        dispatchUnwritten(sending, plans, outcome);
        return taken;
    }

    /** Dispatches pushes that hold their room already; each outcome frees its room once given to {@code outcome}. */
    private void dispatchUnwritten(List<DeliveryStore.ClaimedPush> pushes,
                                   java.util.function.Function<String, NotificationPlans.Plan> plans,
                                   java.util.function.BiConsumer<DeliveryStore.ClaimedPush, PushDispatcher.Settled> outcome) {
        if (pushes.isEmpty()) {
            return;
        }
        dispatcher.prepare(pushes, plans);
        for (DeliveryStore.ClaimedPush push : pushes) {
            dispatcher.dispatch(push, plans.apply(push.notificationId())).whenComplete((settled, never) -> {
                try {
                    outcome.accept(push, settled);
                } finally {
                    capacity.release();
                }
            });
        }
    }

    /** Counts outcomes at {@code herald.deliveries}: one counter update per (app, status, reason), not one per push. */
    void count(Collection<PushDispatcher.Settled> outcomes) {
        Map<List<String>, Long> counts = new java.util.HashMap<>();
        for (PushDispatcher.Settled s : outcomes) {
            DeliveryStore.Finished f = s.finished();
            counts.merge(List.of(s.appId(), f.status(), f.reason() == null ? "none" : f.reason()), 1L, Long::sum);
        }
        counts.forEach((key, n) -> meters.counter("herald.deliveries", "app", key.get(0), "channel", "push",
                "status", key.get(1), "reason", key.get(2)).increment(n));
    }

    /**
     * Once pushes sent before their deliveries existed are written: counts their outcomes and clears the
     * tokens their gateways called dead (a failure to clear is logged; the next push finds them dead again).
     */
    void recorded(Collection<PushDispatcher.Settled> settled, List<DeliveryStore.DeadToken> dead, Instant now) {
        count(settled);
        try {
            clearDead(dead, now);
        } catch (RuntimeException e) {
            LOG.warn("Could not clear {} dead tokens: {}", dead.size(), e.toString());
        }
    }

    /** Clears the tokens gateways called dead (compare-and-clear) and counts those cleared. */
    void clearDead(List<DeliveryStore.DeadToken> dead, Instant now) {
        if (!dead.isEmpty()) {
            List<String> cleared = store.clearDeadTokens(dead, now);
            meters.counter("herald.devices.tokens.cleared").increment(cleared.size());
        }
    }

    private void writeLoop() {
        List<PushDispatcher.Settled> batch = new ArrayList<>(WRITE_BATCH);
        // after close, until every push in flight has been written (or the join gives up)
        while (running || capacity.availablePermits() < maxInFlight) {
            try {
                PushDispatcher.Settled first = settled.poll(200, TimeUnit.MILLISECONDS);
                if (first == null) {
                    continue;
                }
                batch.add(first);
                gather(batch);
                write(batch);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            } finally {
                batch.clear();
            }
        }
    }

    /**
     * Adds to {@code batch} the outcomes that come within {@link #LINGER} of its first, until it holds
     * {@link #LINGER_BATCH}: a statement and a commit per few hundred outcomes rather than per handful
     * costs PostgreSQL far less for each, and an outcome is recorded at most that much later.
     */
    private void gather(List<PushDispatcher.Settled> batch) {
        long until = System.nanoTime() + LINGER.toNanos();
        while (true) {
            settled.drainTo(batch, WRITE_BATCH - batch.size());
            long left = until - System.nanoTime();
            if (batch.size() >= LINGER_BATCH || left <= 0 || !running) {
                return;
            }
            PushDispatcher.Settled more;
            try {
                more = settled.poll(left, TimeUnit.NANOSECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt(); // what was gathered is still written; the loop then ends
                return;
            }
            if (more == null) {
                return;
            }
            batch.add(more);
        }
    }

    private void write(List<PushDispatcher.Settled> batch) {
        while (true) {
            try {
                Instant now = clock.instant();
                store.finish(batch.stream().map(PushDispatcher.Settled::finished).toList(), now);
                clearDead(batch.stream().map(PushDispatcher.Settled::deadToken).filter(d -> d != null).toList(), now);
                break;
            } catch (RuntimeException e) {
                if (!running) {
                    // not written: the leases end and the pushes are sent again by whoever runs next
                    break;
                }
                LOG.warn("Recording {} push outcomes failed; retrying shortly: {}", batch.size(), e.toString());
                pause();
            }
        }
        count(batch);
        capacity.release(batch.size());
    }

    private void pause() {
        try {
            signals.pushes.await(Duration.ofSeconds(1));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    @Override
    @PreDestroy
    public void close() {
        running = false;
        claimer.interrupt();
        try {
            claimer.join(TimeUnit.SECONDS.toMillis(5));
            for (Thread writer : writers) {
                writer.join(TimeUnit.SECONDS.toMillis(10));
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
