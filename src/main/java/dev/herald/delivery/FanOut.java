package dev.herald.delivery;

import dev.herald.notifications.NotificationStore;
import dev.herald.notifications.StoredNotification;
import dev.herald.notifications.Target;
import io.micronaut.transaction.TransactionOperations;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.sql.Connection;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;

/**
 * Runs a routing job for devices or tags, pushes first: each push's delivery is written once, with its
 * outcome, instead of queued first and updated after (an update of a queued row costs PostgreSQL three
 * times an insert). The job's thread reads its devices a chunk at a time and sends them at once; a
 * writer thread takes the chunks in order and, once every push of one has an outcome, inserts its
 * deliveries and moves the job's cursor past it in one transaction (renewing its lease). Reading and
 * sending never wait for PostgreSQL's writes, only for room: at most {@code unwrittenChunks} chunks
 * are out at once.
 * <p>
 * A node that dies leaves its job at the last chunk written: whoever takes it over sends the chunks
 * after that again (at most {@code unwrittenChunks}, at least once, with the same APNs ids), and no push
 * is lost. Until a device's delivery is written, a receipt for it answers 503 with {@code Retry-After}.
 * A node stopping writes what is in flight, for a few seconds at most, then hands the job on at once.
 */
final class FanOut {

    private static final Logger LOG = LoggerFactory.getLogger(FanOut.class);
    /** Devices read, sent and then written together, unless {@code herald.delivery.fan-out-chunk} says otherwise. */
    static final int CHUNK = 1_000;
    /** How long a node stopping waits for the outcomes of pushes in flight, to write them. */
    private static final Duration STOP_WAIT = Duration.ofSeconds(4);

    private final DeliveryStore.Job job;
    private final StoredNotification notification;
    private final DeliveryStore store;
    private final NotificationStore notifications;
    private final PushWorker pushes;
    private final TransactionOperations<Connection> transactions;
    private final Clock clock;
    private final Duration lease;
    private final int chunkSize;
    private final java.util.function.BooleanSupplier running;
    /** Chunks in the order they were read, then what ends the job's run: {@link #END} or {@link #STOP}. */
    private final BlockingQueue<Chunk> toWrite = new LinkedBlockingQueue<>();
    /** A permit per chunk that may be out (read and not yet written). */
    private final Semaphore room;
    /** Set by the writer: the job is no longer this node's (or cannot be written); reading stops. */
    private volatile boolean lost;
    /** The writer's: when it last wrote the job (renewing its lease), and the cursor it wrote. */
    private Instant renewedAt;
    private String written;

    private final Chunk end = new Chunk(null);
    private final Chunk stop = new Chunk(null);

    FanOut(DeliveryStore.Job job, StoredNotification notification, DeliveryStore store, NotificationStore notifications,
           PushWorker pushes, TransactionOperations<Connection> transactions, Clock clock, Duration lease,
           int chunkSize, int inFlight, java.util.function.BooleanSupplier running) {
        this.job = job;
        this.notification = notification;
        this.store = store;
        this.notifications = notifications;
        this.pushes = pushes;
        this.transactions = transactions;
        this.clock = clock;
        this.lease = lease;
        this.chunkSize = chunkSize;
        // enough chunks for every push in flight to be someone's, and one being read
        this.room = new Semaphore(Math.max(2, inFlight / chunkSize + 2));
        this.running = running;
        this.renewedAt = clock.instant();
        this.written = job.cursor();
    }

    /** Whether a job for this notification goes pushes first: a device or tag target with the push channel. */
    static boolean applies(StoredNotification notification) {
        Target.Kind kind = notification.request().target().kind();
        return (kind == Target.Kind.TAGS || kind == Target.Kind.DEVICES)
                && notification.request().channels().contains(dev.herald.notifications.Channel.PUSH);
    }

    /** One chunk: the cursor after it, and its deliveries as their outcomes come in (from any thread). */
    private final class Chunk {
        final String cursor;
        final List<DeliveryStore.Outcome> rows = new ArrayList<>();
        final List<PushDispatcher.Settled> settled = new ArrayList<>();
        final List<DeliveryStore.DeadToken> dead = new ArrayList<>();
        /** Complete once every outcome is in and the sending itself is over. */
        final CompletableFuture<Void> complete = new CompletableFuture<>();
        /** Not all of its pushes went out (this node is stopping): it never completes. */
        volatile boolean abandoned;
        private int waiting = 1;

        Chunk(String cursor) {
            this.cursor = cursor;
        }

        synchronized void add(DeliveryStore.Outcome row) {
            rows.add(row);
        }

        synchronized void expect(int outcomes) {
            waiting += outcomes;
        }

        void settle(DeliveryStore.ClaimedPush push, PushDispatcher.Settled outcome) {
            synchronized (this) {
                if (outcome == null) {
                    // the dispatcher always settles; were it not to, the push is tried again
                    rows.add(new DeliveryStore.Outcome(push.userId(), push.installationId(), 1, "queued", "internal",
                            clock.instant()));
                } else {
                    DeliveryStore.Finished f = outcome.finished();
                    rows.add(new DeliveryStore.Outcome(push.userId(), push.installationId(), f.attempts(), f.status(),
                            f.reason(), f.nextAttemptAt()));
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
                complete.complete(null);
            }
        }
    }

    /**
     * Runs the job from its cursor to its end, or until the job is no longer this node's, or this node
     * stops (then, once what is in flight is written, the job is left due at once for any node).
     */
    void run() {
        Thread writer = new Thread(this::writeLoop, "fan-out-writer");
        writer.setDaemon(true);
        writer.start();
        RuntimeException failed = null;
        boolean exhausted = false;
        try {
            exhausted = read();
        } catch (InterruptedException e) {
            // this node is stopping
        } catch (RuntimeException e) {
            failed = e; // PostgreSQL away, say: what is in flight is still written if it can be
        }
        toWrite.add(exhausted ? end : stop);
        boolean interrupted = Thread.interrupted();
        while (writer.isAlive()) {
            try {
                writer.join(STOP_WAIT.plusSeconds(1).toMillis());
                if (!running.getAsBoolean() && writer.isAlive()) {
                    LOG.warn("Routing of {} did not finish writing in time; its job is taken up when its lease ends",
                            notification.id());
                    break;
                }
            } catch (InterruptedException e) {
                interrupted = true;
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
        if (failed != null) {
            throw failed;
        }
    }

    /** Reads and sends chunk after chunk; true once the target's end was reached. */
    private boolean read() throws InterruptedException {
        String read = job.cursor();
        Target target = notification.request().target();
        while (!lost && running.getAsBoolean()) {
            if (!room.tryAcquire(200, TimeUnit.MILLISECONDS)) {
                continue;
            }
            String after = read;
            List<DeliveryStore.Recipient> devices;
            String last;
            boolean exhausted;
            if (target.kind() == Target.Kind.TAGS) {
                devices = transactions.executeRead(s -> store.taggedDevices(notification.appId(), target.ids(),
                        after, chunkSize));
                exhausted = devices.size() < chunkSize;
                last = devices.isEmpty() ? after : devices.get(devices.size() - 1).installationId();
            } else {
                List<String> ids = target.ids().stream().filter(id -> id.compareTo(after) > 0).sorted()
                        .distinct().limit(chunkSize).toList();
                devices = ids.isEmpty() ? List.of()
                        : transactions.executeRead(s -> store.devices(notification.appId(), ids));
                exhausted = ids.size() < chunkSize;
                last = ids.isEmpty() ? after : ids.get(ids.size() - 1);
            }
            if (last.equals(after)) {
                room.release();
            } else {
                Chunk chunk = new Chunk(last);
                toWrite.add(chunk);
                if (!send(chunk, devices)) {
                    return false;
                }
                read = last;
            }
            if (exhausted) {
                return true;
            }
        }
        return false;
    }

    /** Sends a chunk's pushes; false when not all went out (this node is stopping). */
    private boolean send(Chunk chunk, List<DeliveryStore.Recipient> devices) {
        List<DeliveryStore.ClaimedPush> outgoing = new ArrayList<>(devices.size());
        for (DeliveryStore.Recipient device : devices) {
            if (device.token() == null) {
                chunk.add(new DeliveryStore.Outcome(device.userId(), device.installationId(), 0, "failed", "no_token", null));
            } else {
                outgoing.add(pushes.unwritten(notification.id(), device));
            }
        }
        chunk.expect(outgoing.size());
        int sent = pushes.sendUnwritten(notification, outgoing, chunk::settle, () -> !lost && running.getAsBoolean());
        if (sent == outgoing.size()) {
            chunk.sent();
        } else {
            // stopping: the chunk never completes, and the job is left at the chunk before it
            chunk.abandoned = true;
        }
        return !chunk.abandoned;
    }

    /** The writer: each chunk in order once complete, then the end of the job or its hand-over. */
    private void writeLoop() {
        try {
            while (true) {
                Chunk next = toWrite.poll(lease.toMillis() / 6, TimeUnit.MILLISECONDS);
                if (next == null) {
                    renewIfDue();
                } else if (next == end) {
                    end();
                    return;
                } else if (next == stop) {
                    handOn();
                    return;
                } else if (!awaitComplete(next)) {
                    handOn(); // stopping, and the chunk's outcomes are not all in: it is sent again
                    return;
                } else if (write(next)) {
                    room.release();
                } else {
                    return;
                }
                if (lost) {
                    return;
                }
            }
        } catch (InterruptedException e) {
            lost = true;
        } catch (RuntimeException e) {
            LOG.warn("Routing of {} stopped: {}; its job is taken up again when its lease ends", notification.id(),
                    e.toString());
            lost = true;
        } finally {
            room.release(Integer.MAX_VALUE / 2); // the reader never waits for a writer that is gone
        }
    }

    /** Waits for a chunk's outcomes, keeping the job's lease; false when this node stops first. */
    private boolean awaitComplete(Chunk chunk) throws InterruptedException {
        long stopBy = Long.MAX_VALUE;
        while (true) {
            try {
                chunk.complete.get(Math.min(lease.toMillis() / 6, 200), TimeUnit.MILLISECONDS);
                return true;
            } catch (java.util.concurrent.TimeoutException e) {
                if (chunk.abandoned) {
                    return false;
                }
                renewIfDue();
                if (lost) {
                    return false;
                }
                if (!running.getAsBoolean()) {
                    stopBy = Math.min(stopBy, System.nanoTime() + STOP_WAIT.toNanos());
                    if (System.nanoTime() > stopBy) {
                        return false;
                    }
                }
            } catch (java.util.concurrent.ExecutionException e) {
                throw new IllegalStateException(e); // never completed exceptionally
            }
        }
    }

    /**
     * Writes a chunk's deliveries and moves the job past it; false when the job is not this node's. A
     * write that fails (PostgreSQL away) is tried again while the lease lasts.
     */
    private boolean write(Chunk chunk) throws InterruptedException {
        while (true) {
            try {
                Instant now = clock.instant();
                boolean mine = transactions.executeWrite(status -> {
                    if (!store.advanceJob(job, chunk.cursor, now.plus(lease))) {
                        status.setRollbackOnly();
                        return false;
                    }
                    if (!chunk.rows.isEmpty()) {
                        store.insertOutcomes(notification.id(), chunk.rows, now);
                    }
                    return true;
                });
                if (!mine) {
                    lostJob();
                    return false;
                }
                renewedAt = now;
                written = chunk.cursor;
                pushes.count(chunk.settled);
                try {
                    pushes.clearDead(chunk.dead, now);
                } catch (RuntimeException e) {
                    LOG.warn("Could not clear {} dead tokens: {}", chunk.dead.size(), e.toString());
                }
                return true;
            } catch (RuntimeException e) {
                if (Duration.between(renewedAt, clock.instant()).compareTo(lease.dividedBy(2)) > 0) {
                    throw e; // the lease is ending: another node takes the job from its last chunk written
                }
                LOG.warn("Writing a chunk of {} failed; retrying shortly: {}", notification.id(), e.toString());
                TimeUnit.SECONDS.sleep(1); // a pause before trying PostgreSQL again, on the writer's own thread
            }
        }
    }

    private void lostJob() {
        LOG.info("Routing of {} stopped: the notification is gone or another node took its job over", notification.id());
        lost = true;
    }

    /** Ends the job: every chunk was written. */
    private void end() {
        boolean mine = transactions.executeWrite(status -> {
            if (!store.deleteJob(job)) {
                return false;
            }
            notifications.markRouted(notification.id());
            return true;
        });
        if (!mine) {
            lostJob();
        }
    }

    /** This node stops routing the job: it is due at once for any node, from the last chunk written. */
    private void handOn() {
        try {
            String at = written;
            transactions.executeWrite(s -> store.advanceJob(job, at, clock.instant()));
        } catch (RuntimeException e) {
            LOG.warn("Could not hand routing of {} on; it is taken up when its lease ends: {}", notification.id(),
                    e.toString());
        }
    }

    /** Renews the job's lease when a third of it passed without a chunk written. */
    private void renewIfDue() {
        Instant now = clock.instant();
        if (Duration.between(renewedAt, now).compareTo(lease.dividedBy(3)) < 0) {
            return;
        }
        String at = written;
        if (transactions.executeWrite(s -> store.advanceJob(job, at, now.plus(lease)))) {
            renewedAt = now;
        } else {
            lostJob();
        }
    }
}
