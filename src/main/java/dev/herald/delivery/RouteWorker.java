package dev.herald.delivery;

import dev.herald.notifications.NotificationStore;
import dev.herald.notifications.StoredNotification;
import io.micronaut.context.annotation.Context;
import io.micronaut.context.annotation.Requires;
import io.micronaut.context.annotation.Value;
import io.micronaut.transaction.TransactionOperations;
import jakarta.annotation.PreDestroy;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.sql.Connection;
import java.time.Clock;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;

/**
 * Runs routing jobs: notifications scheduled for later, and targets too large to route while
 * accepting. A job is claimed with a lease and routed a chunk per transaction, each chunk advancing
 * the job's cursor and renewing the lease, so pushes start after the first chunk and a node that dies
 * mid-way leaves the rest to another node. A cancelled notification's job is gone, and routing stops.
 * Devices and tags go pushes first, each delivery written once with its outcome ({@link FanOut}).
 */
@Context
@Requires(property = "herald.delivery.enabled", notEquals = "false")
class RouteWorker implements AutoCloseable {

    private static final Logger LOG = LoggerFactory.getLogger(RouteWorker.class);
    static final Duration LEASE = Duration.ofMinutes(1);

    private final DeliveryStore store;
    private final NotificationStore notifications;
    private final Router router;
    private final PushWorker pushes;
    private final WorkSignals signals;
    private final TransactionOperations<Connection> transactions;
    private final Clock clock;
    private final Duration poll;
    private final int fanOutChunk;
    private final Thread thread;
    /**
     * Fan-outs writing at once, at most: the router goes on to its next job while a fan-out's writer
     * waits for the last outcomes, but not past this many (a burst of small jobs while a gateway hangs
     * would otherwise start a thread each).
     */
    static final int WRITERS = 16;
    private final java.util.concurrent.Semaphore writerSlots = new java.util.concurrent.Semaphore(WRITERS);
    /** The writers of fan-outs this node routed ({@link FanOut}), some still writing. */
    private final java.util.Set<Thread> writers = java.util.concurrent.ConcurrentHashMap.newKeySet();
    private volatile boolean running = true;

    RouteWorker(DeliveryStore store, NotificationStore notifications, Router router, PushWorker pushes,
                WorkSignals signals,
                TransactionOperations<Connection> transactions, Clock clock,
                @Value("${herald.delivery.poll:500ms}") Duration poll,
                @Value("${herald.delivery.fan-out-chunk:" + FanOut.CHUNK + "}") int fanOutChunk) {
        this.store = store;
        this.notifications = notifications;
        this.router = router;
        this.pushes = pushes;
        this.signals = signals;
        this.transactions = transactions;
        this.clock = clock;
        this.poll = poll;
        this.fanOutChunk = Math.max(1, fanOutChunk);
        signals.listen();
        thread = new Thread(this::loop, "router");
        thread.setDaemon(true);
        thread.start();
    }

    private void loop() {
        while (running) {
            java.util.concurrent.atomic.AtomicBoolean handedOn = new java.util.concurrent.atomic.AtomicBoolean();
            try {
                // a job is claimed only when a fan-out could start writing it (see WRITERS)
                if (!writerSlots.tryAcquire(poll.toMillis(), TimeUnit.MILLISECONDS)) {
                    continue;
                }
                try {
                    // one at a time: a job claimed is a job started, its lease renewed with every chunk
                    List<DeliveryStore.Job> jobs = store.claimJobs(clock.instant(), LEASE, 1);
                    if (jobs.isEmpty()) {
                        signals.router.await(poll);
                        continue;
                    }
                    Map<String, StoredNotification> byId = notifications.findAll(jobs.stream()
                            .map(DeliveryStore.Job::notificationId).collect(Collectors.toSet()))
                            .stream().collect(Collectors.toMap(StoredNotification::id, n -> n));
                    for (DeliveryStore.Job job : jobs) {
                        if (!running) {
                            return;
                        }
                        run(job, byId.get(job.notificationId()), handedOn);
                    }
                } finally {
                    if (!handedOn.get()) {
                        writerSlots.release(); // else the fan-out's writer releases it when it ends
                    }
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            } catch (RuntimeException e) {
                LOG.warn("Routing failed; its jobs are taken up again when their lease ends: {}", e.toString());
                try {
                    signals.router.await(Duration.ofSeconds(1));
                } catch (InterruptedException interrupted) {
                    Thread.currentThread().interrupt();
                    return;
                }
            }
        }
    }

    /** Runs a job; a fan-out's writer takes this thread's writer slot ({@code handedOn} set). */
    private void run(DeliveryStore.Job job, StoredNotification notification,
                     java.util.concurrent.atomic.AtomicBoolean handedOn) {
        if (notification == null || "cancelled".equals(notification.status())) {
            transactions.executeWrite(status -> store.deleteJob(job));
            return;
        }
        if ("scheduled".equals(notification.status())) {
            // from here on a cancel answers 409: routing began
            boolean began = transactions.executeWrite(status -> notifications.leaveScheduled(notification.id(), "routing"));
            if (!began) {
                // cancelled meanwhile (or another node began): the job goes only while this claim holds
                transactions.executeWrite(status -> store.deleteJob(job));
                return;
            }
        }
        if (FanOut.applies(notification)) {
            // its writer goes on writing the last outcomes while this thread goes on to the next job
            writers.removeIf(w -> !w.isAlive());
            new FanOut(job, notification, store, notifications, pushes, transactions, clock, LEASE,
                    fanOutChunk, pushes.inFlight(), () -> running, writerSlots::release).run(writer -> {
                        writers.add(writer);
                        handedOn.set(true);
                    });
            return;
        }
        String cursor = job.cursor();
        if (LOG.isDebugEnabled()) {
            LOG.debug("Routing {} ({} recipients), accepted {} ms ago", notification.id(), notification.recipients(),
                    Duration.between(notification.createdAt(), clock.instant()).toMillis());
        }
        Router.Early early = router.liveFirst(job, notification.id(), notification.appId(), notification.request(),
                cursor, clock.instant(), () -> clock.instant().plus(LEASE));
        while (running) {
            String from = cursor;
            Router.Step step = transactions.executeWrite(status -> {
                Router.Step next = router.routeChunk(notification.id(), notification.appId(), notification.request(),
                        from, clock.instant(), clock.instant().plus(PushWorker.LEASE), early);
                boolean stillMine = next.done() ? store.deleteJob(job)
                        : store.advanceJob(job, next.cursor(), clock.instant().plus(LEASE));
                if (!stillMine) {
                    // cancelled, or this node's lease ran out and another node took the job over
                    status.setRollbackOnly();
                    return new Router.Step(from, true, List.of());
                }
                if (next.done()) {
                    notifications.markRouted(notification.id());
                }
                return next;
            });
            // the router keeps pace with the gateways, well within the pushes' lease
            pushes.handOff(notification, step.leased(), PushWorker.LEASE.dividedBy(3));
            if (step.done()) {
                return;
            }
            cursor = step.cursor();
        }
    }

    @Override
    @PreDestroy
    public void close() {
        running = false;
        thread.interrupt();
        try {
            thread.join(TimeUnit.SECONDS.toMillis(5));
            // fan-outs write what is in flight, then hand their jobs on (each within FanOut.STOP_WAIT)
            long until = System.nanoTime() + FanOut.STOP_WAIT.plusSeconds(1).toNanos();
            for (Thread writer : writers) {
                writer.join(Math.max(1, TimeUnit.NANOSECONDS.toMillis(until - System.nanoTime())));
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
