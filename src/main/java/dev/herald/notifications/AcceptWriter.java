package dev.herald.notifications;

import dev.herald.api.ApiException;
import dev.herald.api.EventLoopAnswers;
import dev.herald.api.ProblemType;
import dev.herald.api.SqlStates;
import dev.herald.delivery.PushWorker;
import dev.herald.delivery.PushesFirst;
import dev.herald.delivery.WorkSignals;
import io.micrometer.core.instrument.DistributionSummary;
import io.micrometer.core.instrument.MeterRegistry;
import io.micronaut.core.annotation.Nullable;
import io.micronaut.scheduling.TaskExecutors;
import io.micronaut.transaction.TransactionOperations;
import jakarta.annotation.PreDestroy;
import jakarta.inject.Named;
import jakarta.inject.Singleton;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.sql.Connection;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executor;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.TimeUnit;

/**
 * Stores accepted notifications with group commit: a writer thread takes whatever requests are waiting
 * (up to {@link #MAX_BATCH}) and accepts them in one transaction, so many requests share one commit
 * and plain device sends share their statements. Two writers by default ({@code herald.notifications.writers}):
 * when requests pile up, the second builds and writes a batch while the first waits for its commit. A request's future completes once its notification
 * committed; its pushes are then handed to this node's push worker. A batch that fails in the
 * database is retried one request at a time, so one bad request fails alone. Full queue: 503.
 */
@Singleton
class AcceptWriter implements AutoCloseable {

    private static final Logger LOG = LoggerFactory.getLogger(AcceptWriter.class);
    static final int MAX_BATCH = 256;
    /** Requests waiting from which a second writer takes a batch too (see {@link #run}), unless configured. */
    static final int HELP_FROM = 32;

    private final NotificationService service;
    private final TransactionOperations<Connection> transactions;
    private final Optional<PushWorker> pushes;
    private final Optional<PushesFirst> pushesFirst;
    private final WorkSignals signals;
    private final ExecutorService answering;
    private final DistributionSummary batchSizes;
    private final BlockingQueue<Pending> queue = new ArrayBlockingQueue<>(8192);
    private final List<Thread> writers = new ArrayList<>();
    private final int helpFrom;
    /** A permit when requests pile up: a helping writer takes a batch. */
    private final java.util.concurrent.Semaphore backlog = new java.util.concurrent.Semaphore(0);
    private volatile boolean running = true;

    AcceptWriter(NotificationService service, TransactionOperations<Connection> transactions,
                 Optional<PushWorker> pushes, Optional<PushesFirst> pushesFirst, WorkSignals signals, MeterRegistry meters,
                 @Named(TaskExecutors.BLOCKING) ExecutorService answering,
                 @io.micronaut.context.annotation.Value("${herald.notifications.writers:2}") int writerCount,
                 @io.micronaut.context.annotation.Value("${herald.notifications.help-from:" + HELP_FROM + "}") int helpFrom) {
        this.helpFrom = Math.max(1, helpFrom);
        this.service = service;
        this.transactions = transactions;
        this.pushes = pushes;
        this.pushesFirst = pushesFirst;
        this.signals = signals;
        this.answering = answering;
        this.batchSizes = DistributionSummary.builder("herald.notifications.accept.batch")
                .description("Notifications accepted per transaction").register(meters);
        for (int i = 0; i < Math.max(1, writerCount); i++) {
            boolean helping = i > 0;
            Thread writer = new Thread(() -> run(helping), "notification-writer-" + i);
            writer.setDaemon(true);
            writers.add(writer);
        }
        writers.forEach(Thread::start);
    }

    /** A queued notification, answered on {@code answerOn} (its request's event loop), else off the writer. */
    private record Pending(NotificationService.Incoming incoming, CompletableFuture<NotificationService.Accepted> answer,
                           @Nullable Executor answerOn) {
    }

    CompletableFuture<NotificationService.Accepted> submit(NotificationService.Incoming incoming,
                                                           @Nullable Executor answerOn) {
        CompletableFuture<NotificationService.Accepted> answer = new CompletableFuture<>();
        if (!running || !queue.offer(new Pending(incoming, answer, answerOn))) {
            answer.completeExceptionally(new ApiException(ProblemType.UNAVAILABLE,
                    "Too many notifications are waiting to be stored; retry shortly", List.of(),
                    Map.of("Retry-After", "1")));
        } else if (queue.size() >= helpFrom && backlog.availablePermits() == 0) {
            backlog.release();
        }
        return answer;
    }

    /**
     * A writer's loop. The first takes whatever waits, as soon as anything does, and drains the queue
     * when this node stops. A second writer (and any after it, {@code helping}) takes a batch only once
     * {@link #HELP_FROM} requests wait, that is, when they pile up behind the first writer's commit: under
     * lighter load one writer keeps PostgreSQL's transactions fewer and larger, which leaves it quicker for
     * everything else (a call's round trip waited twice as long at p99 with two writers always taking turns).
     */
    private void run(boolean helping) {
        List<Pending> batch = new ArrayList<>(MAX_BATCH);
        while (running || !helping && !queue.isEmpty()) {
            try {
                if (helping) {
                    // a permit may outlast its backlog (the first writer took it meanwhile)
                    if (!backlog.tryAcquire(200, TimeUnit.MILLISECONDS) || queue.size() < helpFrom) {
                        continue;
                    }
                } else {
                    Pending first = queue.poll(200, TimeUnit.MILLISECONDS);
                    if (first == null) {
                        continue;
                    }
                    batch.add(first);
                }
                queue.drainTo(batch, MAX_BATCH - batch.size());
                if (!batch.isEmpty()) {
                    writeOrFail(batch);
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            } finally {
                batch.clear();
            }
        }
    }

    /** Writes a batch; what fails unforeseen fails each of its requests. */
    private void writeOrFail(List<Pending> batch) {
        try {
            write(List.copyOf(batch));
        } catch (RuntimeException e) {
            LOG.error("Accepting a batch of notifications failed", e);
            batch.forEach(p -> p.answer().completeExceptionally(e));
        }
    }

    private void write(List<Pending> batch) {
        batchSizes.record(batch.size());
        List<Object> answers;
        try {
            answers = transactions.executeWrite(status ->
                    service.acceptBatch(batch.stream().map(Pending::incoming).toList()));
        } catch (RuntimeException e) {
            if (SqlStates.isUnavailable(e)) {
                batch.forEach(p -> p.answer().completeExceptionally(ApiException.databaseUnavailable()));
                return;
            }
            // one request broke the batch (say, two with the same idempotency key at once): each alone
            answers = new ArrayList<>(batch.size());
            for (Pending p : batch) {
                try {
                    NotificationService.Incoming in = p.incoming();
                    answers.add(service.accept(in.key(), in.body(), in.request(), in.idempotencyKey(), in.now()));
                } catch (RuntimeException alone) {
                    answers.add(SqlStates.isUnavailable(alone) ? ApiException.databaseUnavailable() : alone);
                }
            }
        }
        List<Object> settled = answers;
        // answering (on each request's event loop) and handing pushes over (on the pool) happen off this
        // thread, which goes straight back to the database; the answers are posted first and run apart from
        // the hand-offs, so none holds up a 202 (a push may reach its gateway before its 202 is written:
        // both come after the commit)
        EventLoopAnswers.completeEach(batch.size(), i -> batch.get(i).answerOn(), answering, i -> {
            if (settled.get(i) instanceof NotificationService.Accepted accepted) {
                batch.get(i).answer().complete(accepted);
            } else {
                batch.get(i).answer().completeExceptionally((Throwable) settled.get(i));
            }
        });
        answering.execute(() -> {
            boolean routeJobs = false;
            List<PushWorker.Routed> routed = new ArrayList<>(settled.size());
            List<PushesFirst.Send> first = new ArrayList<>();
            for (Object answer : settled) {
                if (answer instanceof NotificationService.Accepted accepted && !accepted.replay()) {
                    if (accepted.first() != null) {
                        first.add(accepted.first());
                    } else if (accepted.routed() && pushes.isPresent()) {
                        routed.add(new PushWorker.Routed(accepted.stored(), accepted.leased()));
                    } else if (accepted.routed()) {
                        signals.announce(WorkSignals.Kind.PUSH);
                    } else {
                        routeJobs = true;
                    }
                }
            }
            try {
                // the batch's pushes are prepared together: one preference read, one round of device caps
                pushesFirst.ifPresent(sender -> sender.send(first));
                pushes.ifPresent(worker -> worker.handOff(routed));
            } finally {
                if (routeJobs) {
                    signals.wakeRouter();
                    signals.announce(WorkSignals.Kind.ROUTE);
                }
            }
        });
    }

    @Override
    @PreDestroy
    public void close() {
        running = false;
        try {
            long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
            for (Thread writer : writers) {
                writer.join(Math.max(1, TimeUnit.NANOSECONDS.toMillis(until - System.nanoTime())));
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
