package dev.herald.bench;

import com.eatthepath.pushy.apns.ApnsClient;
import com.eatthepath.pushy.apns.ApnsClientBuilder;
import com.eatthepath.pushy.apns.auth.ApnsSigningKey;
import com.eatthepath.pushy.apns.util.SimpleApnsPushNotification;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.herald.apns.ApnsConfiguration;
import dev.herald.apns.ApnsSender;
import dev.herald.delivery.GatewayCredentials;
import dev.herald.delivery.Priority;
import dev.herald.delivery.Push;
import dev.herald.delivery.PushContent;
import dev.herald.delivery.PushKind;
import dev.herald.delivery.PushResult;
import dev.herald.fcm.FcmSender;
import dev.herald.support.FakeFcm;
import dev.herald.support.Fixtures;
import dev.herald.support.MockApns;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import org.HdrHistogram.Histogram;

import java.io.ByteArrayInputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.Statement;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.LongSupplier;

/**
 * Push delivery benchmark: {@code java -Xmx512m -jar target/herald.jar} as a child process (embedded
 * PostgreSQL and Redis) with pushy's MockApnsServer (TLS, HTTP/2) and a loopback FCM v1 endpoint in
 * this JVM, on the same 2 cores.
 * <ol>
 *   <li><b>Sustained sends</b>: single-device notifications ({@code to.devices}, iOS) from 64
 *       connections in a closed loop for {@code bench.seconds}; API latency, and the end-to-end rate
 *       from the first request to the last push reaching the APNs mock.</li>
 *   <li><b>Fan-out</b>: one notification to a tag that all {@code bench.devices} seeded devices carry
 *       (60% iOS, 40% Android): time until the last push reaches its mock, every device exactly once,
 *       the service's peak RSS; after a fan-out to the first {@code bench.fanOutWarmupDevices} of them (tag
 *       {@code warm}), as a service that ran one before.</li>
 *   <li><b>Legs alone</b>, service stopped: raw pushy to the APNs mock, Herald's APNs sender, and
 *       Herald's FCM sender to the FCM endpoint.</li>
 * </ol>
 */
public final class PushDeliveryBench {

    private static final String TEAM = "TEAM123456";
    private static final String KEY_ID = "KEY1234567";
    private static final String APP = "bench";
    private static final String TOPIC = "com.example.bench";

    private final Path jar = Paths.get(System.getProperty("herald.jar", "target/herald.jar")).toAbsolutePath();
    private final Path dataDir = Paths.get(System.getProperty("bench.dataDir", "target/bench-push-data")).toAbsolutePath();
    private final Path logFile = Paths.get(System.getProperty("bench.log", "target/bench-push-service.log")).toAbsolutePath();
    private final Path report = Paths.get(System.getProperty("bench.report", "target/bench-push-delivery.md")).toAbsolutePath();
    private final int seconds = Integer.getInteger("bench.seconds", 30);
    private final int warmup = Integer.getInteger("bench.warmup", 30_000);
    private final int concurrency = Integer.getInteger("bench.concurrency", 64);
    private final int devices = Integer.getInteger("bench.devices", 1_000_000);
    private final int legPushes = Integer.getInteger("bench.legPushes", 200_000);
    /** Devices (the first ones seeded, tag {@code warm}) of a fan-out run before the measured one; 0: none. */
    private final int fanOutWarmup = Integer.getInteger("bench.fanOutWarmupDevices", 200_000);
    /** Parts to run, for profiling one of them: {@code -Dbench.parts=sends,fanout,legs}. */
    private final List<String> parts = List.of(System.getProperty("bench.parts", "sends,fanout,calls,legs").split(","));
    private final ObjectMapper json = new ObjectMapper();
    private final List<String[]> rows = new ArrayList<>();
    private final List<String> verdicts = new ArrayList<>();

    public static void main(String[] args) throws Exception {
        System.exit(new PushDeliveryBench().run());
    }

    private int run() throws Exception {
        String p8 = Fixtures.p8();
        boolean ok;
        try (MockApns apns = MockApns.create(); FakeFcm fcm = new FakeFcm()) {
            fcm.start();
            fcm.recording(false);
            apns.recording(false);
            apns.trust(TEAM, KEY_ID, p8);
            ObjectNode apnsBlock = json.createObjectNode().put("teamId", TEAM).put("keyId", KEY_ID).put("privateKey", p8)
                    .put("bundleId", TOPIC).put("environment", "sandbox");
            ObjectNode fcmBlock = json.createObjectNode();
            fcmBlock.set("serviceAccount", json.valueToTree(Fixtures.serviceAccount("bench", fcm.tokenUri())));
            try (BenchService service = BenchService.start(jar, dataDir, logFile, Map.of(
                    "HERALD_APNS_HOST", "127.0.0.1",
                    "HERALD_APNS_PORT", Integer.toString(apns.port()),
                    "HERALD_APNS_TRUSTED_CERT", apns.certificatePath().toString(),
                    "HERALD_FCM_URL", fcm.baseUrl()))) {
                ObjectNode app = json.createObjectNode().put("id", APP).put("name", "Bench");
                app.set("apns", apnsBlock);
                app.set("fcm", fcmBlock);
                service.expect(service.post("/v1/apps", service.adminKey(), app.toString()), 201, "create app");
                String key = BenchService.field(service.expect(service.post("/v1/apps/" + APP + "/keys", service.adminKey(),
                        "{\"name\":\"bench\",\"mode\":\"live\",\"scopes\":[\"send\",\"calls\"]}"), 201, "create key"), "key");
                seed(service);
                if (parts.contains("sends")) {
                    sustainedSends(service, key, apns);
                }
                if (parts.contains("fanout")) {
                    fanOut(service, key, apns, fcm);
                }
                if (parts.contains("calls")) {
                    callLatency(service, key, apns, p8);
                }
            }
            if (parts.contains("legs")) {
                legsAlone(apns, fcm, apnsBlock, fcmBlock, p8);
            }
        }
        ok = verdicts.stream().noneMatch(v -> v.contains("NOT met"));
        String table = BenchService.table(rows);
        System.out.println();
        System.out.println(table);
        verdicts.forEach(System.out::println);
        Files.writeString(report, "# Push delivery benchmark\n\nRun at " + Instant.now() + " on "
                + Runtime.getRuntime().availableProcessors() + " cores, " + System.getProperty("java.vm.name") + " "
                + System.getProperty("java.version") + ". Method: `dev.herald.bench.PushDeliveryBench` "
                + "(`./mvnw -B -Pbench verify`).\n\n" + table + "\n" + String.join("\n", verdicts) + "\n");
        BenchService.log("report: %s", report);
        return ok ? 0 : 1;
    }

    /** Installation {@code seed-i} of user {@code u-(i % 1000)}, tag {@code all}; i % 5 < 3 iOS, else Android. */
    private void seed(BenchService service) throws Exception {
        try (Connection c = DriverManager.getConnection(service.jdbcUrl(), "postgres", ""); Statement s = c.createStatement()) {
            long t0 = System.nanoTime();
            int n = s.executeUpdate("""
                    INSERT INTO devices (installation_id, app_id, user_id, platform, push_token, push_token_updated_at,
                                         tags, created_at, updated_at, last_seen_at)
                    SELECT 'seed-' || i, 'bench', 'u-' || (i %% 1000),
                           CASE WHEN i %% 5 < 3 THEN 'ios' ELSE 'android' END,
                           CASE WHEN i %% 5 < 3 THEN md5(i::text) || md5((i + 1)::text)
                                ELSE 'fcm-' || i || ':' || md5(i::text) || md5((i + 1)::text) END,
                           now(), CASE WHEN i <= %d THEN '{all,warm}'::text[] ELSE '{all}'::text[] END, now(), now(), now()
                    FROM generate_series(1, %d) AS i""".formatted(fanOutWarmup, devices));
            s.execute("VACUUM (ANALYZE) devices");
            s.execute("CHECKPOINT");
            BenchService.log("seed: %,d devices in %.1f s", n, (System.nanoTime() - t0) / 1e9);
        }
        rows.add(BenchService.row("seeded devices (tag 'all')", "%,d (60%% iOS, 40%% Android)", devices));
    }

    private void sustainedSends(BenchService service, String key, MockApns apns) throws Exception {
        SplittableRandom random = new SplittableRandom(7);
        try (ClosedLoop load = new ClosedLoop(service.port(), concurrency)) {
            java.util.function.LongFunction<String> body = n -> {
                int i;
                do {
                    i = 1 + random.nextInt(devices);
                } while (i % 5 >= 3);
                return "{\"to\":{\"devices\":[\"seed-" + i + "\"]},\"title\":\"Hello\",\"body\":\"Message " + n + "\"}";
            };
            ClosedLoop.Result warm = load.run("/v1/notifications", key, body, 202, warmup, 600);
            BenchService.log("warm-up: %,d sends in %.1f s, %d errors %s", warm.completed, warm.seconds(), warm.errors,
                    warm.firstErrors);
            awaitCount(apns::count, warm.ok, 120);
            apns.resetCounts();
            // (the metrics are read outside the CPU's window: answering them costs the service CPU too)
            double directBefore = service.metric("herald_notifications_direct_total");
            long cpuBefore = service.cpuTicks();
            ClosedLoop.Result run = load.run("/v1/notifications", key, body, 202, Long.MAX_VALUE, seconds);
            double drained = awaitCount(apns::count, run.ok, 300);
            double e2eSeconds = (System.nanoTime() - run.startNanos) / 1e9 - drained;
            long cpuAfter = service.cpuTicks();
            double direct = service.metric("herald_notifications_direct_total") - directBefore;
            Histogram h = run.latencyMicros;
            double e2eRate = run.ok / e2eSeconds;
            rows.add(BenchService.row("sends: in flight / measured", "%d / %.1f s after %,d warm-up sends", concurrency,
                    run.seconds(), warmup));
            rows.add(BenchService.row("sends: accepted (202) / errors", "%,d / %,d %s", run.ok, run.errors,
                    run.firstErrors.isEmpty() ? "" : run.firstErrors.toString()));
            rows.add(BenchService.row("sends: API throughput", "%,.0f /s", run.ok / run.seconds()));
            rows.add(BenchService.row("sends: API latency p50 / p99 / max", "%.1f / %.1f / %.1f ms",
                    h.getValueAtPercentile(50) / 1000.0, h.getValueAtPercentile(99) / 1000.0, h.getMaxValue() / 1000.0));
            rows.add(BenchService.row("sends: end to end (API -> PostgreSQL -> APNs mock)",
                    "%,.0f /s (last push %.1f s after the last request; each push once: %s)", e2eRate, drained,
                    apns.repeats() == 0 ? "yes" : apns.repeats() + " repeats"));
            rows.add(BenchService.row("sends: answered straight from Netty", "%.1f%%", 100 * direct / run.ok));
            rows.add(BenchService.row("sends: service CPU", "%.2f ms per notification",
                    (cpuAfter - cpuBefore) * 10.0 / run.ok));
            sustainedRate = e2eRate;
            verdicts.add(verdict("sustained sends >= 8,000/s end to end with API p99 < 50 ms",
                    e2eRate >= 8_000 && h.getValueAtPercentile(99) < 50_000 && run.errors == 0));
        }
    }

    private double sustainedRate;

    private void fanOut(BenchService service, String key, MockApns apns, FakeFcm fcm) throws Exception {
        if (fanOutWarmup > 0) {
            // as a service that has run a fan-out before: its code compiled (a cold JIT takes a core for a minute)
            apns.resetCounts();
            fcm.resetCounts();
            long w0 = System.nanoTime();
            service.expect(service.post("/v1/notifications", key,
                    "{\"to\":{\"tags\":[\"warm\"]},\"title\":\"Warm-up\"}"), 202, "warm-up fan-out");
            awaitCount(() -> apns.count() + fcm.sent(), Math.min(fanOutWarmup, devices), 600);
            double warmSeconds = (System.nanoTime() - w0) / 1e9;
            BenchService.log("fan-out warm-up: %,d pushes in %.1f s", apns.count() + fcm.sent(), warmSeconds);
            rows.add(BenchService.row("fan-out: warm-up", "one fan-out to %,d of the devices first (%.1f s)",
                    Math.min(fanOutWarmup, devices), warmSeconds));
        }
        apns.resetCounts();
        fcm.resetCounts();
        long peakRss = service.rssKb();
        long t0 = System.nanoTime();
        String accepted = service.expect(service.post("/v1/notifications", key,
                "{\"to\":{\"tags\":[\"all\"]},\"title\":\"Big news\",\"body\":\"For everyone\"}"), 202, "fan-out").body();
        double acceptSeconds = (System.nanoTime() - t0) / 1e9;
        long deadline = System.nanoTime() + TimeUnit.MINUTES.toNanos(10);
        long lastReport = System.nanoTime();
        while (apns.count() + fcm.sent() < devices && System.nanoTime() < deadline) {
            peakRss = Math.max(peakRss, service.rssKb());
            if (System.nanoTime() - lastReport > TimeUnit.SECONDS.toNanos(5)) {
                BenchService.log("fan-out: %,d of %,d pushes after %.0f s", apns.count() + fcm.sent(), devices,
                        (System.nanoTime() - t0) / 1e9);
                lastReport = System.nanoTime();
            }
            java.util.concurrent.locks.LockSupport.parkNanos(java.util.concurrent.TimeUnit.MILLISECONDS.toNanos(50));
        }
        double total = (System.nanoTime() - t0) / 1e9;
        long pushes = apns.count() + fcm.sent();
        boolean exactlyOnce = pushes == devices && apns.repeats() == 0 && fcm.repeats() == 0;
        rows.add(BenchService.row("fan-out: one notification to 1 tag", "%s", accepted.trim()));
        rows.add(BenchService.row("fan-out: 202 after / last push after", "%.2f s / %.1f s", acceptSeconds, total));
        rows.add(BenchService.row("fan-out: pushes (APNs + FCM) / exactly once", "%,d + %,d / %s", apns.count(), fcm.sent(),
                exactlyOnce ? "yes" : "NO (" + apns.repeats() + " + " + fcm.repeats() + " repeats)"));
        rows.add(BenchService.row("fan-out: rate", "%,.0f pushes/s", pushes / total));
        rows.add(BenchService.row("fan-out: service peak RSS", "%,d MiB", peakRss / 1024));
        verdicts.add(verdict("fan-out to 1,000,000 devices: last push within 40 s, each exactly once, RSS < 1 GiB",
                total <= 40 && exactlyOnce && peakRss < 1024 * 1024));
    }

    private void callLatency(BenchService service, String key, MockApns apns, String p8) throws Exception {
        double background = sustainedRate > 0 ? sustainedRate / 2
                : Double.parseDouble(System.getProperty("bench.backgroundRate", "1000"));
        double callRate = Double.parseDouble(System.getProperty("bench.callRate", "50"));
        int callSeconds = Integer.getInteger("bench.callSeconds", 40);
        CallLatencyBench.Result r = new CallLatencyBench(service, apns, key, key, TOPIC, p8, TEAM, KEY_ID, devices,
                background, callRate, callSeconds, 1_000).run();
        Histogram calls = r.calls();
        r.stages().forEach(l -> BenchService.log("calls: %s", l));
        Histogram raw = r.raw();
        rows.add(BenchService.row("calls: background notifications (half the sustained rate)", "%,.0f /s asked, %,.0f /s done, %,d errors",
                background, r.background().ok / r.background().seconds(), r.background().errors));
        rows.add(BenchService.row("calls: paced / measured", "%,.0f calls/s for %d s: %,d VoIP pushes (%,d answered 200, %,d errors)",
                callRate, callSeconds, r.voipPushes(), r.callAnswers().ok, r.callAnswers().errors));
        rows.add(BenchService.row("calls: API -> APNs mock (VoIP) p50 / p99 / p99.9 / max", "%.1f / %.1f / %.1f / %.1f ms",
                calls.getValueAtPercentile(50) / 1000.0, calls.getValueAtPercentile(99) / 1000.0,
                calls.getValueAtPercentile(99.9) / 1000.0, calls.getMaxValue() / 1000.0));
        Histogram answers = r.callAnswers().latencyMicros;
        rows.add(BenchService.row("calls: POST /v1/calls answer (after the gateways' acks) p50 / p99", "%.1f / %.1f ms",
                answers.getValueAtPercentile(50) / 1000.0, answers.getValueAtPercentile(99) / 1000.0));
        rows.add(BenchService.row("calls: raw pushy -> APNs mock, same load, p50 / p99 / p99.9", "%.1f / %.1f / %.1f ms",
                raw.getValueAtPercentile(50) / 1000.0, raw.getValueAtPercentile(99) / 1000.0,
                raw.getValueAtPercentile(99.9) / 1000.0));
        verdicts.add(verdict("call wake-up API -> APNs mock under background load: p99 < 10 ms, p99.9 < 25 ms",
                calls.getTotalCount() > 0 && r.callAnswers().errors == 0 && calls.getValueAtPercentile(99) < 10_000
                        && calls.getValueAtPercentile(99.9) < 25_000));
    }

    private void legsAlone(MockApns apns, FakeFcm fcm, ObjectNode apnsBlock, ObjectNode fcmBlock, String p8)
            throws Exception {
        PushContent content = new PushContent(PushKind.ALERT, "Hello", "Leg alone", Map.of("k", "v"), null, null, null,
                null, Priority.HIGH, Instant.now().plusSeconds(3600));
        // raw pushy: one client, up to 2,000 pushes in flight
        ApnsClient raw = new ApnsClientBuilder().setApnsServer("127.0.0.1", apns.port())
                .setTrustedServerCertificateChain(apns.certificatePath().toFile())
                .setSigningKey(ApnsSigningKey.loadFromInputStream(new ByteArrayInputStream(p8.getBytes(StandardCharsets.UTF_8)),
                        TEAM, KEY_ID))
                .setConcurrentConnections(2).build();
        String payload = "{\"aps\":{\"alert\":{\"title\":\"Hello\",\"body\":\"Leg alone\"}},\"k\":\"v\"}";
        double rawRate = rate("raw pushy", legPushes, i -> raw.sendNotification(new SimpleApnsPushNotification(
                hexToken(i), TOPIC, payload)).thenApply(r -> r.isAccepted()).exceptionally(e -> false));
        raw.close().get(10, TimeUnit.SECONDS);
        apns.resetCounts();

        SimpleMeterRegistry meters = new SimpleMeterRegistry();
        ApnsSender apnsSender = new ApnsSender(new ApnsConfiguration("127.0.0.1", apns.port(),
                apns.certificatePath().toString(), 2, 2_000), meters);
        GatewayCredentials apnsCredentials = new GatewayCredentials(APP, Instant.now(), apnsBlock);
        double heraldApns = rate("Herald ApnsSender", legPushes, i -> apnsSender.send(apnsCredentials,
                new Push(UUID.randomUUID(), hexToken(i), content)).thenApply(r -> r instanceof PushResult.Accepted));
        apnsSender.close();

        FcmSender fcmSender = new FcmSender(fcm.baseUrl(), 2_000, meters, java.time.Clock.systemUTC());
        GatewayCredentials fcmCredentials = new GatewayCredentials(APP, Instant.now(), fcmBlock);
        double heraldFcm = rate("Herald FcmSender", legPushes, i -> fcmSender.send(fcmCredentials,
                new Push(UUID.randomUUID(), "fcm-leg-" + i, content)).thenApply(r -> r instanceof PushResult.Accepted));
        fcmSender.close();

        rows.add(BenchService.row("APNs leg: raw pushy / Herald's ApnsSender", "%,.0f /s / %,.0f /s", rawRate, heraldApns));
        rows.add(BenchService.row("FCM leg: Herald's FcmSender", "%,.0f /s", heraldFcm));
        rows.add(BenchService.row("end-to-end sends / raw pushy", "%.0f%%", 100 * sustainedRate / rawRate));
        verdicts.add(verdict("FCM leg alone >= 20,000 messages/s", heraldFcm >= 20_000));
    }

    /** Sends {@code n} pushes with at most 2,000 in flight; answers accepted pushes per second. */
    private static double rate(String what, int n, java.util.function.IntFunction<CompletableFuture<Boolean>> send)
            throws InterruptedException {
        // a short warm-up, then the measured run
        for (int pass = 0; pass < 2; pass++) {
            int count = pass == 0 ? Math.max(n / 10, 1_000) : n;
            Semaphore inFlight = new Semaphore(2_000);
            AtomicLong accepted = new AtomicLong();
            AtomicLong failed = new AtomicLong();
            long t0 = System.nanoTime();
            for (int i = 0; i < count; i++) {
                inFlight.acquire();
                send.apply(i).whenComplete((ok, e) -> {
                    if (Boolean.TRUE.equals(ok)) {
                        accepted.incrementAndGet();
                    } else {
                        failed.incrementAndGet();
                    }
                    inFlight.release();
                });
            }
            inFlight.acquire(2_000);
            double s = (System.nanoTime() - t0) / 1e9;
            if (pass == 1) {
                BenchService.log("%s: %,d accepted, %,d failed in %.1f s: %,.0f /s", what, accepted.get(), failed.get(), s,
                        accepted.get() / s);
                return accepted.get() / s;
            }
        }
        throw new IllegalStateException();
    }

    private static String hexToken(int i) {
        return String.format("%064x", i);
    }

    /** Waits until {@code count} reaches {@code expected}; answers how many seconds that took. */
    private static double awaitCount(LongSupplier count, long expected, int timeoutSeconds) throws InterruptedException {
        long t0 = System.nanoTime();
        long deadline = t0 + TimeUnit.SECONDS.toNanos(timeoutSeconds);
        while (count.getAsLong() < expected) {
            if (System.nanoTime() > deadline) {
                throw new IllegalStateException("only " + count.getAsLong() + " of " + expected + " pushes arrived");
            }
            java.util.concurrent.locks.LockSupport.parkNanos(java.util.concurrent.TimeUnit.MILLISECONDS.toNanos(20));
        }
        return (System.nanoTime() - t0) / 1e9;
    }

    private static String verdict(String target, boolean met) {
        return "- " + target + ": " + (met ? "met" : "NOT met");
    }
}
