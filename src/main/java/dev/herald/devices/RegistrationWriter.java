package dev.herald.devices;

import com.github.benmanes.caffeine.cache.Cache;
import com.github.benmanes.caffeine.cache.Caffeine;
import dev.herald.api.ApiException;
import dev.herald.api.EventLoopAnswers;
import dev.herald.api.ProblemType;
import dev.herald.api.SqlStates;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.DistributionSummary;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import io.micronaut.context.annotation.Value;
import io.micronaut.core.annotation.Nullable;
import io.micronaut.scheduling.TaskExecutors;
import jakarta.annotation.PreDestroy;
import jakarta.inject.Named;
import jakarta.inject.Singleton;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.EnumMap;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executor;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;

/**
 * Writes device registrations to PostgreSQL in batches (group commit): requests queue here, and a
 * few writer threads each take everything that queued while they were busy and store it in a single
 * transaction, so that a burst of registrations costs a few statements and one commit rather than
 * one transaction each; several writers keep a batch being built while another waits for its
 * commit. A registration's future completes only after its batch committed, so an
 * answer still means "stored". A full queue is refused with 503 and {@code Retry-After}, never held
 * in memory without bound.
 *
 * <p>Thread-safe. {@link #close()} stops taking registrations and finishes those already queued.
 */
@Singleton
public class RegistrationWriter implements AutoCloseable {

    private static final Logger LOG = LoggerFactory.getLogger(RegistrationWriter.class);
    static final int MAX_BATCH = 256;
    static final int QUEUE_CAPACITY = 8_192;

    private final DeviceStore store;
    private final BlockingQueue<Pending> queue = new ArrayBlockingQueue<>(QUEUE_CAPACITY);
    private final Cache<String, Boolean> knownApps = Caffeine.newBuilder()
            .expireAfterWrite(Duration.ofMinutes(5)).maximumSize(10_000).build();
    private final DistributionSummary batchSizes;
    private final Timer batchTimes;
    private final List<Thread> writers = new ArrayList<>();
    private final Executor answering;
    /** {@code herald.devices.registered} by platform and outcome (created, updated), looked up once. */
    private final Map<Platform, Counter[]> registered = new EnumMap<>(Platform.class);
    private volatile boolean running = true;

    RegistrationWriter(DeviceStore store, MeterRegistry meters,
                       @Value("${herald.devices.registration-writers:1}") int writerCount,
                       @Named(TaskExecutors.BLOCKING) ExecutorService answering) {
        this.store = store;
        this.answering = answering;
        this.batchSizes = DistributionSummary.builder("herald.devices.registration.batch")
                .description("Registrations stored per transaction").register(meters);
        for (Platform platform : Platform.values()) {
            registered.put(platform, new Counter[] {
                    meters.counter("herald.devices.registered", "platform", platform.wire(), "outcome", "created"),
                    meters.counter("herald.devices.registered", "platform", platform.wire(), "outcome", "updated")});
        }
        this.batchTimes = Timer.builder("herald.devices.registration.batch.time")
                .description("Time to store one batch of registrations, commit included")
                .publishPercentiles(0.5, 0.99).register(meters);
        for (int i = 0; i < writerCount; i++) {
            Thread writer = new Thread(this::run, "device-registration-writer-" + i);
            writer.setDaemon(true);
            writer.start();
            writers.add(writer);
        }
    }

    /** A queued registration, answered on {@code answerOn} (the request's event loop), else off the writer. */
    record Pending(DeviceStore.Registration registration, CompletableFuture<DeviceStore.Registered> answer,
                   @Nullable Executor answerOn) {
    }

    /**
     * Queues a registration whose future completes once it is committed (or fails with the reason), on
     * {@code answerOn} when given: the request's own event loop, so the answer is built and written there
     * with no thread in between.
     */
    public CompletableFuture<DeviceStore.Registered> submit(String userId, String installationId,
                                                            DeviceRegistration body, @Nullable Executor answerOn) {
        CompletableFuture<DeviceStore.Registered> answer = new CompletableFuture<>();
        if (!running || !queue.offer(new Pending(new DeviceStore.Registration(userId, installationId, body), answer,
                answerOn))) {
            answer.completeExceptionally(new ApiException(ProblemType.UNAVAILABLE,
                    "Too many registrations are waiting to be stored; retry shortly", List.of(),
                    Map.of("Retry-After", "1")));
        }
        return answer;
    }

    private void run() {
        List<Pending> drained = new ArrayList<>(MAX_BATCH);
        while (running || !queue.isEmpty()) {
            try {
                Pending first = queue.poll(200, TimeUnit.MILLISECONDS);
                if (first == null) {
                    continue;
                }
                drained.add(first);
                queue.drainTo(drained, MAX_BATCH - 1);
                write(drained);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            } catch (RuntimeException e) {
                LOG.error("Device registration batch failed", e);
                drained.forEach(p -> p.answer().completeExceptionally(e));
            } finally {
                drained.clear();
            }
        }
    }

    private void write(List<Pending> drained) {
        List<Pending> accepted = new ArrayList<>(refuseUnknownApps(drained));
        // one lock order for every writer: concurrent batches wait for each other instead of deadlocking
        accepted.sort(Comparator.comparing(p -> p.registration().installationId()));
        for (List<Pending> batch : withoutRepeats(accepted)) {
            batchSizes.record(batch.size());
            try {
                List<DeviceStore.Registered> stored = batchTimes.record(() -> store.registerBatch(
                        batch.stream().map(Pending::registration).toList()));
                answer(batch, stored);
            } catch (RuntimeException e) {
                if (SqlStates.isUniqueViolation(e) || SqlStates.isRetryable(e) || SqlStates.isForeignKeyViolation(e)) {
                    // another writer or node took a token or installation of this batch at the same moment,
                    // or an app went away: settle them one by one
                    batch.forEach(this::writeAlone);
                } else {
                    ApiException unavailable = SqlStates.isUnavailable(e) ? ApiException.databaseUnavailable() : null;
                    if (unavailable == null) {
                        LOG.error("Storing {} device registrations failed", batch.size(), e);
                    }
                    batch.forEach(p -> p.answer().completeExceptionally(unavailable == null ? e : unavailable));
                }
            }
        }
    }

    /**
     * Completes each registration on its request's event loop, the rest on the blocking pool: building
     * and writing the responses happens off the writer thread, which goes straight back to the database.
     */
    private void answer(List<Pending> batch, List<DeviceStore.Registered> stored) {
        for (int i = 0; i < batch.size(); i++) {
            count(batch.get(i).registration().body().platform(), stored.get(i));
        }
        EventLoopAnswers.completeEach(batch.size(), i -> batch.get(i).answerOn(), answering,
                i -> batch.get(i).answer().complete(stored.get(i)));
    }

    private void count(Platform platform, DeviceStore.Registered stored) {
        registered.get(platform)[stored.created() ? 0 : 1].increment();
    }

    private void writeAlone(Pending pending) {
        DeviceStore.Registration r = pending.registration();
        for (int attempt = 1; ; attempt++) {
            try {
                DeviceStore.Registered stored = store.registerBatch(List.of(r)).get(0);
                count(r.body().platform(), stored);
                pending.answer().complete(stored);
                return;
            } catch (RuntimeException e) {
                if (SqlStates.isForeignKeyViolation(e)) {
                    pending.answer().completeExceptionally(ApiException.invalid("app", "no app with this id"));
                    return;
                }
                if (!(SqlStates.isUniqueViolation(e) || SqlStates.isRetryable(e)) || attempt == 3) {
                    pending.answer().completeExceptionally(e);
                    return;
                }
            }
        }
    }

    /** Answers 400 at once for registrations naming an app that does not exist. */
    private List<Pending> refuseUnknownApps(List<Pending> drained) {
        Set<String> unknown = drained.stream().map(p -> p.registration().body().app())
                .filter(app -> knownApps.getIfPresent(app) == null).collect(Collectors.toSet());
        if (unknown.isEmpty()) {
            return drained;
        }
        Set<String> existing = store.existingApps(unknown);
        existing.forEach(app -> knownApps.put(app, Boolean.TRUE));
        List<Pending> accepted = new ArrayList<>(drained.size());
        for (Pending pending : drained) {
            String app = pending.registration().body().app();
            if (unknown.contains(app) && !existing.contains(app)) {
                pending.answer().completeExceptionally(ApiException.invalid("app", "no app with this id"));
            } else {
                accepted.add(pending);
            }
        }
        return accepted;
    }

    /**
     * Splits registrations into consecutive batches in which no installation, push token or VoIP
     * token appears twice (one statement cannot write a row twice); a later registration of the same
     * installation lands in a later batch, so the last one wins, as if they had come one by one.
     */
    static List<List<Pending>> withoutRepeats(List<Pending> registrations) {
        List<List<Pending>> batches = new ArrayList<>();
        // the last batch holding each installation, push token and VoIP token
        Map<String, Integer> installations = new HashMap<>();
        Map<String, Integer> pushTokens = new HashMap<>();
        Map<String, Integer> voipTokens = new HashMap<>();
        for (Pending pending : registrations) {
            DeviceRegistration body = pending.registration().body();
            String installation = pending.registration().installationId();
            int target = 1 + Math.max(installations.getOrDefault(installation, -1),
                    Math.max(pushTokens.getOrDefault(body.pushToken(), -1),
                            body.voipToken() == null ? -1 : voipTokens.getOrDefault(body.voipToken(), -1)));
            if (target == batches.size()) {
                batches.add(new ArrayList<>());
            }
            batches.get(target).add(pending);
            installations.put(installation, target);
            pushTokens.put(body.pushToken(), target);
            if (body.voipToken() != null) {
                voipTokens.put(body.voipToken(), target);
            }
        }
        return batches;
    }

    @Override
    @PreDestroy
    public void close() {
        running = false;
        try {
            for (Thread writer : writers) {
                writer.join(TimeUnit.SECONDS.toMillis(10));
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
