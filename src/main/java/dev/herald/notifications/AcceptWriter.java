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
 * Stores accepted notifications with group commit: one thread takes whatever requests are waiting
 * (up to {@link #MAX_BATCH}) and accepts them in one transaction, so many requests share one commit
 * and plain device sends share their statements. A request's future completes once its notification
 * committed; its pushes are then handed to this node's push worker. A batch that fails in the
 * database is retried one request at a time, so one bad request fails alone. Full queue: 503.
 */
@Singleton
class AcceptWriter implements AutoCloseable {

    private static final Logger LOG = LoggerFactory.getLogger(AcceptWriter.class);
    static final int MAX_BATCH = 256;

    private final NotificationService service;
    private final TransactionOperations<Connection> transactions;
    private final Optional<PushWorker> pushes;
    private final Optional<PushesFirst> pushesFirst;
    private final WorkSignals signals;
    private final ExecutorService answering;
    private final DistributionSummary batchSizes;
    private final BlockingQueue<Pending> queue = new ArrayBlockingQueue<>(8192);
    private final Thread writer;
    private volatile boolean running = true;

    AcceptWriter(NotificationService service, TransactionOperations<Connection> transactions,
                 Optional<PushWorker> pushes, Optional<PushesFirst> pushesFirst, WorkSignals signals, MeterRegistry meters,
                 @Named(TaskExecutors.BLOCKING) ExecutorService answering) {
        this.service = service;
        this.transactions = transactions;
        this.pushes = pushes;
        this.pushesFirst = pushesFirst;
        this.signals = signals;
        this.answering = answering;
        this.batchSizes = DistributionSummary.builder("herald.notifications.accept.batch")
                .description("Notifications accepted per transaction").register(meters);
        writer = new Thread(this::run, "notification-writer");
        writer.setDaemon(true);
        writer.start();
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
        }
        return answer;
    }

    private void run() {
        List<Pending> batch = new ArrayList<>(MAX_BATCH);
        while (running || !queue.isEmpty()) {
            try {
                Pending first = queue.poll(200, TimeUnit.MILLISECONDS);
                if (first == null) {
                    continue;
                }
                batch.add(first);
                queue.drainTo(batch, MAX_BATCH - 1);
                write(List.copyOf(batch));
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            } catch (RuntimeException e) {
                LOG.error("Accepting a batch of notifications failed", e);
                batch.forEach(p -> p.answer().completeExceptionally(e));
            } finally {
                batch.clear();
            }
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
            writer.join(TimeUnit.SECONDS.toMillis(10));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
