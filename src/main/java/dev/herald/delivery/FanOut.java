package dev.herald.delivery;

import dev.herald.notifications.Channel;
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
    static final Duration STOP_WAIT = Duration.ofSeconds(4);

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
    /** Run once by the writer thread when it ends. */
    private final Runnable ended;
    /** Chunks in the order they were read, then what ends the job's run: {@link #end} or {@link #stop}. */
    private final BlockingQueue<Chunk> toWrite = new LinkedBlockingQueue<>();
    /** A permit per chunk that may be out (read and not yet written). */
    private final Semaphore room;
    /** Set by the writer: the job is no longer this node's (or cannot be written); reading stops. */
    private volatile boolean lost;
    /** The writer's: when it last wrote the job (renewing its lease), and the cursor it wrote. */
    private Instant renewedAt;
    private String written;
    private final dev.herald.ops.OncePerMinute renewWarnings = new dev.herald.ops.OncePerMinute();
    /** The writer's: when it gives up waiting for outcomes, once this node stops (0: not stopping yet). */
    private long stopBy;
    /** The notification's push content per locale, built once for the whole job. */
    private final NotificationPlans.Plan plan;

    private final Chunk end = new Chunk(null);
    private final Chunk stop = new Chunk(null);

    FanOut(DeliveryStore.Job job, StoredNotification notification, DeliveryStore store, NotificationStore notifications,
           PushWorker pushes, TransactionOperations<Connection> transactions, Clock clock, Duration lease,
           int chunkSize, int inFlight, java.util.function.BooleanSupplier running, Runnable ended) {
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
        this.ended = ended;
        this.renewedAt = clock.instant();
        this.written = job.cursor();
        this.plan = pushes.plan(notification);
    }

    /** Whether a job for this notification goes pushes first: a device or tag target with the push channel. */
    static boolean applies(StoredNotification notification) {
        Target.Kind kind = notification.request().target().kind();
        return (kind == Target.Kind.TAGS || kind == Target.Kind.DEVICES)
                && notification.request().channels().contains(Channel.PUSH);
    }

    /** One chunk: the cursor after it, and its deliveries as their outcomes come in (from any thread). */
    private final class Chunk extends UnwrittenOutcomes {
        final String cursor;
        final List<DeliveryStore.Outcome> rows = new ArrayList<>();
        /** Complete once every outcome is in and the sending itself is over. */
        final CompletableFuture<Void> complete = new CompletableFuture<>();
        /** Not all of its pushes went out (this node is stopping): it never completes. */
        volatile boolean abandoned;

        Chunk(String cursor) {
            super(clock);
            this.cursor = cursor;
        }

        synchronized void add(DeliveryStore.Outcome row) {
            rows.add(row);
        }

        @Override
        void record(DeliveryStore.ClaimedPush push, DeliveryStore.Outcome row) {
            rows.add(row);
        }

        @Override
        void allIn() {
            complete.complete(null);
        }
    }

    /**
     * Reads and sends the job from its cursor to its end, or until the job is no longer this node's, or
     * this node stops. Returns once reading is over (the router goes on to its next job): the writer
     * thread goes on until the last outcomes are written (or, stopping, for a few seconds
     * at most, then hands the job on at once from the last chunk written), given to {@code started}
     * first. Throws what reading threw, once the writer was told to stop.
     */
    void run(java.util.function.Consumer<Thread> started) {
        Thread writer = new Thread(this::writeLoop, "fan-out-writer");
        writer.setDaemon(true);
        started.accept(writer);
        writer.start();
        boolean exhausted = false;
        try {
            exhausted = read();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt(); // this node is stopping
        } finally {
            toWrite.add(exhausted ? end : stop);
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
                List<String> ids = Router.nextIds(target.ids(), after, chunkSize);
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
        int sent = 0;
        try {
            sent = pushes.sendUnwritten(plan, outgoing, chunk::settle, () -> !lost && running.getAsBoolean());
        } finally {
            if (sent == outgoing.size()) {
                chunk.sent();
            } else {
                // stopping: the chunk never completes, and the job is left at the chunk before it
                chunk.abandoned = true;
            }
        }
        return !chunk.abandoned;
    }

    /** The writer: each chunk in order once complete, then the end of the job or its hand-over. */
    private void writeLoop() {
        try {
            while (!lost) {
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
                    if (!lost) {
                        handOn(); // stopping, and the chunk's outcomes are not all in: it is sent again
                    }
                    return;
                } else if (write(next)) {
                    room.release();
                }
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } catch (RuntimeException e) {
            LOG.warn("Routing of {} stopped: {}; its job is taken up again when its lease ends", notification.id(),
                    e.toString());
        } finally {
            lost = true; // the reader stops, if it still reads
            room.release(Integer.MAX_VALUE / 2); // and never waits for room again
            ended.run();
        }
    }

    /** Waits for a chunk's outcomes, keeping the job's lease; false when this node stops first (or the job went). */
    private boolean awaitComplete(Chunk chunk) throws InterruptedException {
        long giveUp = System.nanoTime() + PushWorker.LEASE.toNanos();
        while (true) {
            try {
                chunk.complete.get(200, TimeUnit.MILLISECONDS);
                return true;
            } catch (java.util.concurrent.TimeoutException e) {
                if (chunk.abandoned) {
                    return false;
                }
                renewIfDue();
                if (lost) {
                    return false;
                }
                if (System.nanoTime() - giveUp > 0) {
                    // every push has an outcome within its send deadline: this one never will
                    LOG.warn("A chunk of {} has had pushes without an outcome for {}; handing the job on",
                            notification.id(), PushWorker.LEASE);
                    return false;
                }
                if (!running.getAsBoolean()) {
                    // stopping: a few seconds for everything in flight, not for each chunk
                    if (stopBy == 0) {
                        stopBy = System.nanoTime() + STOP_WAIT.toNanos();
                    }
                    if (System.nanoTime() - stopBy > 0) {
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
        Instant attempted = null;
        while (true) {
            try {
                if (attempted != null
                        && chunk.cursor.equals(transactions.executeRead(s -> store.jobCursor(job)).orElse(null))) {
                    // the failure came after the commit (its answer was lost): the chunk is written
                    written(chunk, attempted);
                    return true;
                }
                Instant now = clock.instant();
                attempted = now;
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
                written(chunk, now);
                return true;
            } catch (RuntimeException e) {
                pauseOrGiveUp("Writing a chunk", e);
            }
        }
    }

    private void written(Chunk chunk, Instant now) {
        renewedAt = now;
        written = chunk.cursor;
        pushes.recorded(chunk.settled, chunk.dead, now);
    }

    /**
     * After a failed write of the job (PostgreSQL away, say): a pause before the next try, or, once half
     * the lease passed since the last write, the failure (another node takes the job from there).
     */
    private void pauseOrGiveUp(String what, RuntimeException failure) throws InterruptedException {
        if (Duration.between(renewedAt, clock.instant()).compareTo(lease.dividedBy(2)) > 0) {
            throw failure;
        }
        LOG.warn("{} of {} failed; retrying shortly: {}", what, notification.id(), failure.toString());
        TimeUnit.SECONDS.sleep(1); // on the writer's own thread
    }

    private void lostJob() {
        LOG.info("Routing of {} stopped: the notification is gone or another node took its job over", notification.id());
        lost = true;
    }

    /** Ends the job: every chunk was written. */
    private void end() throws InterruptedException {
        while (true) {
            try {
                boolean mine = transactions.executeWrite(status -> {
                    if (!store.deleteJob(job)) {
                        return false;
                    }
                    notifications.markRouted(notification.id());
                    return true;
                });
                if (!mine) {
                    lostJob(); // or it was ended by a try whose commit's answer was lost
                }
                return;
            } catch (RuntimeException e) {
                pauseOrGiveUp("Ending the routing", e);
            }
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
        try {
            if (transactions.executeWrite(s -> store.advanceJob(job, at, now.plus(lease)))) {
                renewedAt = now;
            } else {
                lostJob();
            }
        } catch (RuntimeException e) {
            if (Duration.between(renewedAt, now).compareTo(lease.dividedBy(2)) > 0) {
                throw e;
            }
            if (renewWarnings.due()) {
                LOG.warn("Renewing the routing of {} failed; trying again shortly: {}", notification.id(), e.toString());
            }
        }
    }
}
