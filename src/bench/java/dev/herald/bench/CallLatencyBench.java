package dev.herald.bench;

import com.eatthepath.pushy.apns.ApnsClient;
import com.eatthepath.pushy.apns.ApnsClientBuilder;
import com.eatthepath.pushy.apns.DeliveryPriority;
import com.eatthepath.pushy.apns.PushType;
import com.eatthepath.pushy.apns.auth.ApnsSigningKey;
import com.eatthepath.pushy.apns.util.SimpleApnsPushNotification;
import dev.herald.support.MockApns;
import org.HdrHistogram.Histogram;

import java.io.ByteArrayInputStream;
import java.nio.charset.StandardCharsets;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.Statement;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;

/**
 * Incoming-call latency under load: from sending {@code POST /v1/calls} to the APNs mock receiving the
 * VoIP push, while notifications go through the same service at a steady background rate; then raw
 * pushy's latency to the same mock under the same load, for comparison. Calls and raw pushes are
 * paced (open loop), so a slow answer does not thin out the samples.
 */
final class CallLatencyBench {

    private static final int CALLEES = 500;

    private final BenchService service;
    private final MockApns apns;
    private final String callsKey;
    private final String sendKey;
    private final String topic;
    private final String p8;
    private final String teamId;
    private final String keyId;
    private final int seedDevices;
    private final double backgroundRate;
    private final double callRate;
    private final int seconds;
    private final int warmupCalls;

    private final Map<String, Long> sentAt = new ConcurrentHashMap<>();
    private final Histogram latency = new Histogram(TimeUnit.MINUTES.toMicros(1), 3);
    private volatile Histogram target = latency;

    CallLatencyBench(BenchService service, MockApns apns, String callsKey, String sendKey, String topic, String p8,
                     String teamId, String keyId, int seedDevices, double backgroundRate, double callRate, int seconds,
                     int warmupCalls) {
        this.service = service;
        this.apns = apns;
        this.callsKey = callsKey;
        this.sendKey = sendKey;
        this.topic = topic;
        this.p8 = p8;
        this.teamId = teamId;
        this.keyId = keyId;
        this.seedDevices = seedDevices;
        this.backgroundRate = backgroundRate;
        this.callRate = callRate;
        this.seconds = seconds;
        this.warmupCalls = warmupCalls;
    }

    /** What the run measured. */
    record Result(Histogram calls, ClosedLoop.Result callAnswers, Histogram raw, ClosedLoop.Result background,
                  long voipPushes, List<String> stages) {
    }

    Result run() throws Exception {
        seedCallees();
        apns.onPush((headers, arrived) -> {
            if (!"voip".equals(headers.get("apns-push-type"))) {
                return;
            }
            Long sent = sentAt.remove(headers.getOrDefault("apns-collapse-id", ""));
            if (sent != null) {
                Histogram h = target;
                synchronized (h) {
                    h.recordValue(Math.min((arrived - sent) / 1_000, h.getHighestTrackableValue()));
                }
            }
        });
        SplittableRandom random = new SplittableRandom(11);
        double backgroundSeconds = 10 + 2.0 * seconds + warmupCalls / callRate + 30;
        try (ClosedLoop background = new ClosedLoop(service.port(), 64); ClosedLoop caller = new ClosedLoop(service.port(), 16)) {
            CompletableFuture<ClosedLoop.Result> load = CompletableFuture.supplyAsync(() -> {
                try {
                    return background.run("/v1/notifications", sendKey, n -> {
                        int i;
                        do {
                            i = 1 + random.nextInt(seedDevices);
                        } while (i % 5 >= 3);
                        return "{\"to\":{\"devices\":[\"seed-" + i + "\"]},\"title\":\"Background\",\"body\":\"" + n + "\"}";
                    }, 202, Long.MAX_VALUE, backgroundSeconds, backgroundRate);
                } catch (Exception e) {
                    throw new IllegalStateException(e);
                }
            });
            LockSupport.parkNanos(TimeUnit.SECONDS.toNanos(10));
            BenchService.log("calls: background notifications at %,.0f/s; %,d warm-up calls", backgroundRate, warmupCalls);
            Histogram warm = new Histogram(TimeUnit.MINUTES.toMicros(1), 3);
            target = warm;
            calls(caller, "warm", warmupCalls, warmupCalls / callRate);
            target = latency;
            ClosedLoop.Result answers = calls(caller, "call", Long.MAX_VALUE, seconds);
            awaitDrained();
            // the service's own view of the calls just made: request -> commit -> gateways' acknowledgements,
            // and how many rang from memory (warm-up calls included)
            List<String> stages = service.get("/metrics").body().lines()
                    .filter(l -> l.startsWith("herald_calls_stage_seconds{") || l.startsWith("herald_calls_stage_seconds_max")
                            || l.startsWith("herald_calls_memory_total{"))
                    .toList();
            BenchService.log("calls: %,d measured, p99 %.1f ms; raw pushy next", latency.getTotalCount(),
                    latency.getValueAtPercentile(99) / 1000.0);
            Histogram raw = new Histogram(TimeUnit.MINUTES.toMicros(1), 3);
            target = raw;
            rawPushy();
            awaitDrained();
            ClosedLoop.Result backgroundResult = load.get(10 * 60, TimeUnit.SECONDS);
            apns.onPush(null);
            return new Result(latency, answers, raw, backgroundResult, latency.getTotalCount(), stages);
        }
    }

    /** Callee {@code callee-i} has one iPhone with a VoIP token. */
    private void seedCallees() throws Exception {
        try (Connection c = DriverManager.getConnection(service.jdbcUrl(), "postgres", ""); Statement s = c.createStatement()) {
            s.execute("""
                    INSERT INTO devices (installation_id, app_id, user_id, platform, push_token, push_token_updated_at,
                                         voip_token, voip_token_updated_at, tags, created_at, updated_at, last_seen_at)
                    SELECT 'callee-phone-' || i, 'bench', 'callee-' || i, 'ios', md5('p' || i) || md5('q' || i), now(),
                           md5('v' || i) || md5('w' || i), now(), '{}', now(), now(), now()
                    FROM generate_series(1, %d) AS i
                    ON CONFLICT DO NOTHING""".formatted(CALLEES));
        }
    }

    private ClosedLoop.Result calls(ClosedLoop caller, String prefix, long max, double forSeconds) throws Exception {
        return caller.run("/v1/calls", callsKey, n -> {
            String callId = prefix + "-" + n + "-" + System.nanoTime();
            sentAt.put(callId, System.nanoTime());
            return "{\"callId\":\"" + callId + "\",\"callee\":\"callee-" + (1 + n % CALLEES)
                    + "\",\"caller\":{\"id\":\"bench\",\"name\":\"Bench Caller\"},\"ringSeconds\":120}";
        }, 200, max, forSeconds, callRate);
    }

    /** Raw pushy VoIP pushes to the same mock, paced like the calls, measured the same way. */
    private void rawPushy() throws Exception {
        ApnsClient raw = new ApnsClientBuilder().setApnsServer("127.0.0.1", apns.port())
                .setTrustedServerCertificateChain(apns.certificatePath().toFile())
                .setSigningKey(ApnsSigningKey.loadFromInputStream(new ByteArrayInputStream(p8.getBytes(StandardCharsets.UTF_8)),
                        teamId, keyId))
                .build();
        try {
            String payload = "{\"aps\":{},\"type\":\"call.incoming\",\"callId\":\"raw\"}";
            // warm the connection
            raw.sendNotification(new SimpleApnsPushNotification("00".repeat(32), topic + ".voip", payload,
                    Instant.now().plusSeconds(60), DeliveryPriority.IMMEDIATE, PushType.VOIP, "raw-warm")).get(10, TimeUnit.SECONDS);
            long start = System.nanoTime();
            long n = 0;
            long end = start + TimeUnit.SECONDS.toNanos(seconds);
            while (true) {
                long slot = start + (long) (n * 1e9 / callRate);
                if (slot >= end) {
                    break;
                }
                long wait = slot - System.nanoTime();
                if (wait > 0) {
                    LockSupport.parkNanos(wait);
                }
                String id = "raw-" + n++;
                sentAt.put(id, System.nanoTime());
                raw.sendNotification(new SimpleApnsPushNotification(String.format("%064x", n), topic + ".voip", payload,
                        Instant.now().plusSeconds(60), DeliveryPriority.IMMEDIATE, PushType.VOIP, id));
            }
        } finally {
            raw.close().get(10, TimeUnit.SECONDS);
        }
    }

    private void awaitDrained() {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (!sentAt.isEmpty() && System.nanoTime() < deadline) {
            LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(20));
        }
        if (!sentAt.isEmpty()) {
            BenchService.log("calls: %d pushes never reached the mock: %s", sentAt.size(),
                    List.copyOf(sentAt.keySet()).subList(0, Math.min(3, sentAt.size())));
            sentAt.clear();
        }
    }
}
