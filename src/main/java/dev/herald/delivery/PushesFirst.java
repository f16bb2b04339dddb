package dev.herald.delivery;

import dev.herald.notifications.StoredNotification;
import io.micronaut.context.annotation.Context;
import io.micronaut.context.annotation.Requires;
import io.micronaut.transaction.TransactionOperations;
import jakarta.annotation.PreDestroy;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.sql.Connection;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

/**
 * Sends the pushes of notifications routed while accepting (device sends) before their deliveries
 * exist, and writes each delivery once, with its outcome. The accepting transaction stores the
 * notification and a routing job claimed by this node, which is the promise that it gets sent. Once
 * every push of a notification has its outcome, the writer thread deletes the job and inserts the
 * deliveries in one transaction, many notifications at once (gathered for up to {@link PushWorker#LINGER}).
 * Inserting a delivery queued and updating it with its outcome cost PostgreSQL about two and a half times
 * as much (the update writes a new row version and its index entries).
 * <p>
 * A node that dies leaves the jobs to any node's router once their lease ends, which sends those
 * devices again ({@link FanOut}: at least once, the same APNs ids). A notification that finds no room
 * among the pushes in flight is queued instead, its deliveries written {@code queued} and due at once
 * for whichever node has room; so is one still waiting for outcomes when this node stops (after
 * {@link FanOut#STOP_WAIT}). Until its deliveries are written, the notification reads as routing and a
 * receipt for it answers 503 with {@code Retry-After}.
 */
@Context
@Requires(property = "herald.delivery.enabled", notEquals = "false")
public class PushesFirst implements AutoCloseable {

    private static final Logger LOG = LoggerFactory.getLogger(PushesFirst.class);
    /** Deliveries written per transaction, at most (whole notifications; the first always). */
    private static final int WRITE_ROWS = 1_000;

    private final PushWorker pushes;
    private final DeliveryStore store;
    private final WorkSignals signals;
    private final TransactionOperations<Connection> transactions;
    private final Clock clock;
    /** Notifications whose every outcome is in, to write. */
    private final BlockingQueue<Pending> complete = new LinkedBlockingQueue<>();
    /** Notifications sent and not yet written (or queued). */
    private final Set<Pending> open = ConcurrentHashMap.newKeySet();
    /** Their devices: at most as many as the pushes a node holds in flight ({@code herald.delivery.in-flight}). */
    private final java.util.concurrent.atomic.AtomicInteger unwritten = new java.util.concurrent.atomic.AtomicInteger();
    /** Calls of {@link #send} under way: a node stopping writes or queues what they sent too. */
    private final java.util.concurrent.atomic.AtomicInteger sending = new java.util.concurrent.atomic.AtomicInteger();
    private final Thread writer;
    private volatile boolean running = true;

    PushesFirst(PushWorker pushes, DeliveryStore store, WorkSignals signals,
                TransactionOperations<Connection> transactions, Clock clock) {
        this.pushes = pushes;
        this.store = store;
        this.signals = signals;
        this.transactions = transactions;
        this.clock = clock;
        writer = new Thread(this::writeLoop, "pushes-first-writer");
        writer.setDaemon(true);
        writer.start();
    }

    /** A notification just accepted, its job claimed by this node, and the devices it names as they are now. */
    public record Send(StoredNotification notification, DeliveryStore.Job job, List<DeliveryStore.Recipient> devices) {
    }

    /** A notification sent, its outcomes as they come in (from any thread). */
    private final class Pending extends UnwrittenOutcomes {
        final Send send;
        final Instant sentAt;
        /** Each device's delivery, by installation id, once it has its outcome. */
        final Map<String, DeliveryStore.Outcome> rows = new LinkedHashMap<>();

        Pending(Send send, Instant sentAt) {
            super(clock);
            this.send = send;
            this.sentAt = sentAt;
        }

        @Override
        void record(DeliveryStore.ClaimedPush push, DeliveryStore.Outcome row) {
            rows.put(push.installationId(), row);
        }

        /** The last outcome puts the notification up for writing. */
        @Override
        void allIn() {
            complete.add(this);
        }

        /** Its deliveries: the outcomes in, and the devices still without one queued, due at {@code now}. */
        synchronized List<DeliveryStore.Outcome> rows(Instant now) {
            List<DeliveryStore.Outcome> all = new ArrayList<>(send.devices().size());
            for (DeliveryStore.Recipient device : send.devices()) {
                DeliveryStore.Outcome row = rows.get(device.installationId());
                all.add(row != null ? row : new DeliveryStore.Outcome(device.userId(), device.installationId(), 0,
                        "queued", null, now));
            }
            return all;
        }
    }

    /**
     * Sends these notifications' pushes, once their accepting transaction committed. Queued instead
     * (their deliveries written {@code queued}, due now): those that find no room among the pushes in
     * flight or among those sent and not yet written ({@code herald.delivery.in-flight} each), those
     * whose job's lease is half gone already, and all of them once this node stops. Never throws.
     */
    public void send(List<Send> sends) {
        if (sends.isEmpty()) {
            return;
        }
        sending.incrementAndGet();
        try {
            Instant now = clock.instant();
            List<Pending> pending = new ArrayList<>(sends.size());
            List<List<DeliveryStore.ClaimedPush>> groups = new ArrayList<>(sends.size());
            Map<String, NotificationPlans.Plan> plans = new HashMap<>();
            Map<String, Pending> byNotification = new HashMap<>();
            for (Send send : sends) {
                Pending p = new Pending(send, now);
                List<DeliveryStore.ClaimedPush> outgoing = new ArrayList<>(send.devices().size());
                for (DeliveryStore.Recipient device : send.devices()) {
                    if (device.token() == null) {
                        p.rows.put(device.installationId(), new DeliveryStore.Outcome(device.userId(),
                                device.installationId(), 0, "failed", "no_token", null));
                    } else {
                        outgoing.add(pushes.unwritten(send.notification().id(), device));
                    }
                }
                p.expect(outgoing.size());
                plans.put(send.notification().id(), pushes.plan(send.notification()));
                byNotification.put(send.notification().id(), p);
                pending.add(p);
                groups.add(outgoing);
            }
            // those that may go: in order, while this node runs, their lease has time and the unwritten have room
            int taking = 0;
            int reserved = 0;
            while (running && taking < pending.size()) {
                Pending p = pending.get(taking);
                int devices = p.send.devices().size();
                if (Duration.between(p.send.notification().createdAt(), now).compareTo(PushWorker.LEASE.dividedBy(2)) > 0
                        || unwritten.get() + reserved + devices > pushes.inFlight()) {
                    break;
                }
                reserved += devices;
                taking++;
            }
            unwritten.addAndGet(reserved);
            open.addAll(pending.subList(0, taking));
            int went = 0;
            try {
                went = pushes.sendUnwrittenNow(groups.subList(0, taking), plans::get,
                        (push, settled) -> byNotification.get(push.notificationId()).settle(push, settled));
            } catch (RuntimeException e) {
                LOG.warn("Sending {} notifications failed; they are queued: {}", sends.size(), e.toString());
            }
            pending.subList(0, went).forEach(Pending::sent);
            List<Pending> noRoom = List.copyOf(pending.subList(went, pending.size()));
            noRoom.forEach(this::leave);
            if (!noRoom.isEmpty()) {
                queue(noRoom);
            }
        } finally {
            sending.decrementAndGet();
        }
    }

    /** A notification is written (or queued, or left to its lease): its room among the unwritten is free. */
    private void leave(Pending p) {
        if (open.remove(p)) {
            unwritten.addAndGet(-p.send.devices().size());
        }
    }

    /**
     * Writes these notifications' deliveries as they stand, the devices without an outcome queued and
     * due now (for whichever node has room), and ends their jobs. If that fails, the jobs' leases end
     * and any node's router sends them.
     */
    private void queue(List<Pending> pending) {
        try {
            written(pending, write(pending));
            signals.wakePushes();
        } catch (RuntimeException e) {
            LOG.warn("Could not queue {} notifications; they are sent again once their lease ends: {}",
                    pending.size(), e.toString());
        } finally {
            pending.forEach(this::leave);
        }
    }

    /**
     * Ends the notifications' jobs still this node's and inserts their deliveries, in one transaction;
     * answers the notifications written (a job no longer this node's was taken over when its lease ran
     * out, or went with its notification: its deliveries are not this node's to write).
     */
    private Set<String> write(List<Pending> pending) {
        Instant now = clock.instant();
        Map<String, List<DeliveryStore.Outcome>> rows = new LinkedHashMap<>();
        pending.forEach(p -> rows.put(p.send.notification().id(), p.rows(now)));
        return transactions.executeWrite(status -> {
            Set<String> ours = store.endJobs(pending.stream().map(p -> p.send.job()).toList());
            rows.keySet().retainAll(ours);
            store.insertOutcomes(rows, now);
            return ours;
        });
    }

    /** Counts the outcomes of the notifications written and clears the tokens their gateways called dead. */
    private void written(List<Pending> pending, Set<String> ours) {
        List<PushDispatcher.Settled> settled = new ArrayList<>();
        List<DeliveryStore.DeadToken> dead = new ArrayList<>();
        for (Pending p : pending) {
            if (ours.contains(p.send.notification().id())) {
                synchronized (p) {
                    settled.addAll(p.settled);
                    dead.addAll(p.dead);
                }
            }
        }
        pushes.recorded(settled, dead, clock.instant());
    }

    private void writeLoop() {
        List<Pending> batch = new ArrayList<>();
        long stopBy = 0;
        while (running || !open.isEmpty() || sending.get() > 0) {
            if (!running) {
                if (stopBy == 0) {
                    stopBy = System.nanoTime() + FanOut.STOP_WAIT.toNanos();
                } else if (System.nanoTime() - stopBy > 0) {
                    break;
                }
            }
            try {
                Pending first = complete.poll(100, TimeUnit.MILLISECONDS);
                if (first == null) {
                    continue;
                }
                batch.add(first);
                gather(batch);
                writeWritten(batch);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                break;
            } catch (RuntimeException e) {
                // unforeseen: these notifications are sent again once their lease ends
                LOG.warn("Writing the deliveries of {} notifications failed: {}", batch.size(), e.toString());
                batch.forEach(this::leave);
            } finally {
                batch.clear();
            }
        }
        // stopping with outcomes still out: queued, sent again by whichever node claims them
        List<Pending> left = List.copyOf(open);
        if (!left.isEmpty()) {
            LOG.info("Stopping: {} notifications still had pushes without an outcome; they are queued", left.size());
            queue(left);
        }
    }

    /** Adds what completes within {@link PushWorker#LINGER} of the first, up to {@link #WRITE_ROWS} deliveries. */
    private void gather(List<Pending> batch) throws InterruptedException {
        long until = System.nanoTime() + PushWorker.LINGER.toNanos();
        int rows = batch.get(0).send.devices().size();
        while (rows < WRITE_ROWS && running) {
            long left = until - System.nanoTime();
            Pending more = left > 0 ? complete.poll(left, TimeUnit.NANOSECONDS) : complete.poll();
            if (more == null) {
                return;
            }
            batch.add(more);
            rows += more.send.devices().size();
        }
    }

    /**
     * Writes notifications whose outcomes are all in, retried while PostgreSQL fails and the oldest
     * job's lease has half of it left (after that, any node's router sends them again).
     */
    private void writeWritten(List<Pending> batch) throws InterruptedException {
        try {
            while (true) {
                try {
                    written(batch, write(batch));
                    return;
                } catch (RuntimeException e) {
                    Instant oldest = batch.stream().map(p -> p.sentAt).min(Instant::compareTo).orElseThrow();
                    if (!running || Duration.between(oldest, clock.instant()).compareTo(PushWorker.LEASE.dividedBy(2)) > 0) {
                        LOG.warn("Could not write the deliveries of {} notifications; they are sent again once their "
                                + "lease ends: {}", batch.size(), e.toString());
                        return;
                    }
                    LOG.warn("Writing the deliveries of {} notifications failed; retrying shortly: {}", batch.size(),
                            e.toString());
                    TimeUnit.SECONDS.sleep(1); // on the writer's own thread
                }
            }
        } finally {
            batch.forEach(this::leave);
        }
    }

    @Override
    @PreDestroy
    public void close() {
        running = false;
        try {
            writer.join(FanOut.STOP_WAIT.plusSeconds(2).toMillis());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
