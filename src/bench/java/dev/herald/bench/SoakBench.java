package dev.herald.bench;

import com.eatthepath.pushy.apns.server.RejectionReason;
import dev.herald.support.FakeFcm;
import dev.herald.support.Fixtures;
import dev.herald.support.MockApns;
import dev.herald.support.SseStream;
import io.zonky.test.db.postgres.embedded.EmbeddedPostgres;
import redis.embedded.RedisServer;

import java.io.IOException;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Semaphore;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;
import java.util.stream.Stream;

/**
 * The soak: {@code bench.soakMinutes} (10) of mixed load on one Herald process with its own
 * PostgreSQL, Redis, APNs mock and FCM endpoint, a fault injected every minute, then an account of
 * every notification answered 202. Load, per second: {@code bench.soakRate} notifications to
 * users with an iPhone and an Android phone (two pushes each unless the user holds a stream), a third
 * as many device registrations, half as many reads (inbox pages and notification statuses), one call;
 * (100 by default: about half of what this mix sustained on these 2 cores when offered more; each
 * notification is an inbox item, a presence look-up, a live event or two pushes, and an email step),
 * {@code bench.soakStreams} (200) users hold live streams, a tenth of them reconnecting every minute.
 * Faults, 15 s each from second 20 of every minute after the first, in turn: APNs answering 503, FCM
 * answering 429, Redis stopped, APNs dropping its connections, PostgreSQL restarted, APNs hanging.
 * Checked at the end: every accepted notification is stored and none of its deliveries is left queued
 * (lost: those that are not), no 500 was answered, and the service's heap after a full GC, threads and
 * open files are where they were once warm (after minute 3; after minute 1 in a short run).
 */
public final class SoakBench {

    private static final String TEAM = "TEAM123456";
    private static final String KEY_ID = "KEY1234567";
    private static final String APP = "soak";
    private static final String[] FAULTS = {"APNs answers 503", "FCM answers 429", "Redis stopped",
            "APNs drops its connections", "PostgreSQL restarted", "APNs hangs"};

    private final Path jar = Paths.get(System.getProperty("herald.jar", "target/herald.jar")).toAbsolutePath();
    private final Path dataDir = Paths.get(System.getProperty("bench.dataDir", "target/bench-soak-data")).toAbsolutePath();
    private final Path logFile = Paths.get(System.getProperty("bench.log", "target/bench-soak-service.log")).toAbsolutePath();
    private final Path report = Paths.get(System.getProperty("bench.report", "target/bench-soak.md")).toAbsolutePath();
    private final int minutes = Integer.getInteger("bench.soakMinutes", 10);
    private final double rate = Double.parseDouble(System.getProperty("bench.soakRate", "100"));
    private final int users = Integer.getInteger("bench.soakUsers", 2_000);
    private final int streamCount = Integer.getInteger("bench.soakStreams", 200);

    private final HttpClient http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
            .connectTimeout(Duration.ofSeconds(5)).build();
    private final ExecutorService workers = Executors.newFixedThreadPool(96);
    private final Semaphore room = new Semaphore(96);
    private final ConcurrentLinkedQueue<String> accepted = new ConcurrentLinkedQueue<>();
    /** The last 1,024 accepted ids, for reads of recent notifications. */
    private final java.util.concurrent.atomic.AtomicReferenceArray<String> recent = new java.util.concurrent.atomic.AtomicReferenceArray<>(1024);
    private final AtomicLong recentNext = new AtomicLong();
    private final Map<String, AtomicLong> statuses = new ConcurrentHashMap<>();
    private final AtomicLong skipped = new AtomicLong();
    private final AtomicLong slowest = new AtomicLong();
    private final List<String> faultLog = new ArrayList<>();
    private final List<String> minuteLog = new ArrayList<>();
    private final List<Long> heapByMinute = new ArrayList<>();
    private int baselineMinute;

    private EmbeddedPostgres postgres;
    private int pgPort;
    private RedisServer redis;
    private MockApns apns;
    private FakeFcm fcm;
    private BenchService service;
    private String key;
    private String[] userTokens;
    private final List<SseStream> streams = new ArrayList<>();

    public static void main(String[] args) throws Exception {
        System.exit(new SoakBench().run());
    }

    private int run() throws Exception {
        BenchService.deleteRecursively(dataDir);
        Files.createDirectories(dataDir);
        pgPort = freePort();
        int redisPort = freePort();
        postgres = startPostgres();
        redis = RedisServer.builder().port(redisPort).bind("127.0.0.1").setting("save \"\"").build();
        redis.start();
        String p8 = Fixtures.p8();
        apns = MockApns.create();
        apns.trust(TEAM, KEY_ID, p8);
        apns.recording(false);
        fcm = new FakeFcm();
        fcm.recording(false);
        try {
            service = BenchService.start(jar, dataDir.resolve("herald"), logFile, Map.of(
                    "DATABASE_URL", postgres.getJdbcUrl("postgres", "postgres"), "DATABASE_USER", "postgres",
                    "REDIS_URI", "redis://127.0.0.1:" + redisPort,
                    "HERALD_MASTER_KEY", "aGVyYWxkLXRlc3QtbWFzdGVyLWtleS0zMi1ieXRlcyE=",
                    "HERALD_APNS_HOST", "127.0.0.1", "HERALD_APNS_PORT", Integer.toString(apns.port()),
                    "HERALD_APNS_TRUSTED_CERT", apns.certificatePath().toString(),
                    "HERALD_FCM_URL", fcm.baseUrl()));
            setUp(p8);
            return soak();
        } finally {
            streams.forEach(SseStream::close);
            workers.shutdownNow();
            if (service != null) {
                service.close();
            }
            apns.close();
            fcm.close();
            redis.stop();
            postgres.close();
        }
    }

    private void setUp(String p8) throws Exception {
        String app = "{\"id\":\"" + APP + "\",\"name\":\"Soak\",\"apns\":{\"teamId\":\"" + TEAM + "\",\"keyId\":\"" + KEY_ID
                + "\",\"privateKey\":" + quote(p8) + ",\"bundleId\":\"com.example.soak\",\"environment\":\"sandbox\"},"
                + "\"fcm\":{\"serviceAccount\":" + new com.fasterxml.jackson.databind.ObjectMapper().writeValueAsString(
                Fixtures.serviceAccount("soak", fcm.tokenUri())) + "}}";
        service.expect(service.post("/v1/apps", service.adminKey(), app), 201, "app");
        key = BenchService.field(service.expect(service.post("/v1/apps/" + APP + "/keys", service.adminKey(),
                "{\"name\":\"soak\",\"mode\":\"live\",\"scopes\":[\"send\",\"users\",\"calls\"]}"), 201, "key"), "key");
        userTokens = new String[users];
        for (int u = 0; u < users; u++) {
            userTokens[u] = BenchService.field(service.expect(service.post("/v1/users/user-" + u + "/tokens", key, "{}"),
                    201, "user token"), "token");
            expect(send("PUT", "/v1/devices/iphone-" + u, userTokens[u], iphone()), 201);
            expect(send("PUT", "/v1/devices/android-" + u, userTokens[u], android()), 201);
        }
        for (int s = 0; s < streamCount; s++) {
            streams.add(openStream(s));
        }
        BenchService.log("soak: %,d users with an iPhone (alert and VoIP tokens) and an Android phone; %,d streams",
                users, streamCount);
    }

    private int soak() throws Exception {
        long start = System.nanoTime();
        long end = start + TimeUnit.MINUTES.toNanos(minutes);
        double sends = 0;
        double registrations = 0;
        double reads = 0;
        double calls = 0;
        long last = start;
        long[] baseline = null;
        int minute = 0;
        int faultsInjected = 0;
        long deliveredAtMinute = gatewayCount();
        long acceptedAtMinute = 0;
        boolean faultOn = false;
        Runnable restore = null;
        while (System.nanoTime() < end) {
            long now = System.nanoTime();
            double elapsed = (now - last) / 1e9;
            last = now;
            sends += rate * elapsed;
            registrations += rate / 3 * elapsed;
            reads += rate / 2 * elapsed;
            calls += elapsed;
            for (; sends >= 1; sends--) {
                submit(this::sendOne);
            }
            for (; registrations >= 1; registrations--) {
                submit(this::registerOne);
            }
            for (; reads >= 1; reads--) {
                submit(this::readOne);
            }
            for (; calls >= 1; calls--) {
                submit(this::callOne);
            }
            int m = (int) ((now - start) / TimeUnit.MINUTES.toNanos(1));
            long second = (now - start) / 1_000_000_000L % 60;
            if (m != minute) {
                long delivered = gatewayCount();
                long acc = accepted.size();
                String line = String.format(Locale.ROOT, "minute %d: %,d accepted, %,d pushes taken by the gateways, statuses %s, RSS %,d MiB",
                        minute + 1, acc - acceptedAtMinute, delivered - deliveredAtMinute, statusSnapshot(), service.rssKb() / 1024);
                minuteLog.add(line);
                BenchService.log("soak: %s", line);
                deliveredAtMinute = delivered;
                acceptedAtMinute = acc;
                minute = m;
                long[] sample = resources();
                heapByMinute.add(sample[0]);
                BenchService.log("soak: after minute %d: heap after GC %,d KB, %d threads, %d open files",
                        m, sample[0], sample[1], sample[2]);
                // the baseline: once caches and pools have filled (the third minute of a long soak)
                if (m == (minutes >= 6 ? 3 : 1)) {
                    baseline = sample;
                    baselineMinute = m;
                    service.classHistogram(25).forEach(l -> BenchService.log("soak: baseline histogram %s", l));
                }
                reconnectSomeStreams();
            }
            if (m >= 1 && !faultOn && second >= 20 && second < 21 && m <= minutes - 1 && faultsInjected < m) {
                String fault = FAULTS[faultsInjected % FAULTS.length];
                restore = inject(fault);
                faultOn = true;
                faultsInjected++;
                faultLog.add(String.format(Locale.ROOT, "minute %d, 0:%02d: %s for 15 s", m + 1, second, fault));
                BenchService.log("soak: fault %d: %s", faultsInjected, fault);
            }
            if (faultOn && second >= 35) {
                restore.run();
                faultOn = false;
            }
            LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(10));
        }
        if (faultOn) {
            restore.run();
        }
        room.acquire(96);
        room.release(96);
        BenchService.log("soak: load stopped after %d minutes; %,d accepted; waiting for every delivery to settle", minutes,
                accepted.size());
        long drainStart = System.nanoTime();
        List<String> ids = new ArrayList<>(accepted);
        long queued;
        while ((queued = unsettled(ids)) > 0 && System.nanoTime() - drainStart < TimeUnit.MINUTES.toNanos(10)) {
            LockSupport.parkNanos(TimeUnit.SECONDS.toNanos(2));
        }
        double drainSeconds = (System.nanoTime() - drainStart) / 1e9;
        long[] after = resources();
        if (baseline == null) {
            baseline = after; // a run too short to have a baseline: nothing to compare
        }
        service.classHistogram(25).forEach(l -> BenchService.log("soak: final histogram %s", l));
        return report(ids, queued, drainSeconds, faultsInjected, baseline, after);
    }

    private int report(List<String> ids, long queued, double drainSeconds, int faults, long[] baseline, long[] after)
            throws Exception {
        long stored = count("SELECT count(*) FROM notifications WHERE id = ANY (?)", ids);
        Map<String, Long> outcomes = new TreeMap<>();
        long reached = 0;
        try (Connection c = DriverManager.getConnection(postgres.getJdbcUrl("postgres", "postgres"));
             PreparedStatement q = c.prepareStatement("SELECT channel, status, coalesce(reason, ''), count(*) FROM deliveries"
                     + " WHERE notification_id = ANY (?) GROUP BY 1, 2, 3 ORDER BY 1, 2, 3");
             PreparedStatement r = c.prepareStatement("SELECT count(DISTINCT notification_id) FROM deliveries"
                     + " WHERE notification_id = ANY (?) AND channel IN ('push', 'live') AND status IN ('sent', 'delivered', 'opened')")) {
            q.setArray(1, c.createArrayOf("text", ids.toArray()));
            try (ResultSet rs = q.executeQuery()) {
                while (rs.next()) {
                    outcomes.put(rs.getString(1) + " " + rs.getString(2) + (rs.getString(3).isEmpty() ? "" : " / " + rs.getString(3)),
                            rs.getLong(4));
                }
            }
            r.setArray(1, c.createArrayOf("text", ids.toArray()));
            try (ResultSet rs = r.executeQuery()) {
                rs.next();
                reached = rs.getLong(1);
            }
        }
        long lost = (ids.size() - stored) + (queued > 0 ? queued : 0);
        long errors500 = statuses.getOrDefault("500", new AtomicLong()).get();
        long heapGrowthKb = after[0] - baseline[0];
        StringBuilder md = new StringBuilder();
        md.append("### Soak (`./mvnw -B -Pbench verify -Dbench.skipDevices=true -Dbench.skipPush=true -Dbench.skipStreams=true`, `dev.herald.bench.SoakBench`)\n\n");
        md.append(String.format(Locale.ROOT, "%d minutes on these 2 cores: %.0f notifications/s to users (iPhone + Android each), "
                        + "%.0f registrations/s, %.0f reads/s, 1 call/s, %d live streams (10%% reconnecting each minute); "
                        + "%d faults, 15 s each.%n%n", minutes, rate, rate / 3, rate / 2, streamCount, faults));
        md.append("| figure | value |\n|---|---|\n");
        md.append(String.format(Locale.ROOT, "| notifications accepted (202) | %,d |%n", ids.size()));
        md.append(String.format(Locale.ROOT, "| stored, every delivery settled | %,d (settled %.0f s after the load stopped) |%n",
                stored - Math.max(queued, 0), drainSeconds));
        md.append(String.format(Locale.ROOT, "| reached a device (a push sent or a live event) | %,d |%n", reached));
        md.append(String.format(Locale.ROOT, "| lost (not stored, or a delivery left queued) | %,d |%n", lost));
        md.append(String.format(Locale.ROOT, "| responses by status | %s |%n", statusSnapshot()));
        md.append(String.format(Locale.ROOT, "| slowest response | %,d ms |%n", slowest.get() / 1_000_000));
        md.append(String.format(Locale.ROOT, "| requests not sent (all 96 load threads waiting) | %,d |%n", skipped.get()));
        md.append(String.format(Locale.ROOT, "| heap after full GC: after minute %d / at the end | %,d KB / %,d KB (%+,d KB) |%n",
                baselineMinute, baseline[0], after[0], heapGrowthKb));
        md.append(String.format(Locale.ROOT, "| heap after full GC, minute by minute | %s KB |%n",
                heapByMinute.stream().map(k -> String.format(Locale.ROOT, "%,d", k)).toList()));
        md.append(String.format(Locale.ROOT, "| threads: after minute %d / at the end | %d / %d |%n", baselineMinute, baseline[1], after[1]));
        md.append(String.format(Locale.ROOT, "| open files and sockets: after minute %d / at the end | %d / %d |%n",
                baselineMinute, baseline[2], after[2]));
        md.append("\nDeliveries of the accepted notifications:\n\n| channel status / reason | count |\n|---|---|\n");
        outcomes.forEach((k, v) -> md.append(String.format(Locale.ROOT, "| %s | %,d |%n", k, v)));
        md.append("\nFaults:\n\n");
        faultLog.forEach(f -> md.append("- ").append(f).append('\n'));
        md.append("\nMinute by minute:\n\n");
        minuteLog.forEach(l -> md.append("- ").append(l).append('\n'));
        boolean held = lost == 0 && reached == ids.size() && errors500 == 0 && heapGrowthKb < Math.max(8 * 1024, baseline[0] / 10)
                && after[1] - baseline[1] <= 4 && after[2] - baseline[2] <= 8;
        md.append(String.format(Locale.ROOT, "%nVerdict: %s (nothing lost, every notification reached a device, no 500, heap growth under 10%% or 8 MiB, "
                + "at most 4 more threads and 8 more open files).%n", held ? "held" : "NOT held"));
        Files.writeString(report, md.toString());
        System.out.println(md);
        return held ? 0 : 1;
    }

    // -- the load ---------------------------------------------------------------------------------------

    private void submit(Runnable task) {
        if (!room.tryAcquire()) {
            skipped.incrementAndGet();
            return;
        }
        workers.execute(() -> {
            try {
                task.run();
            } finally {
                room.release();
            }
        });
    }

    private void sendOne() {
        int u = ThreadLocalRandom.current().nextInt(users);
        HttpResponse<String> r = send("POST", "/v1/notifications", key,
                "{\"to\":{\"users\":[\"user-" + u + "\"]},\"title\":\"Soak\",\"body\":\"for user " + u + "\"}");
        if (r != null && r.statusCode() == 202) {
            String id = BenchService.field(r, "id");
            accepted.add(id);
            recent.set((int) (recentNext.getAndIncrement() % recent.length()), id);
        }
    }

    private void registerOne() {
        int u = ThreadLocalRandom.current().nextInt(users);
        send("PUT", "/v1/devices/android-" + u, userTokens[u], android());
    }

    private void readOne() {
        int u = ThreadLocalRandom.current().nextInt(users);
        if (ThreadLocalRandom.current().nextBoolean()) {
            send("GET", "/v1/inbox?limit=20", userTokens[u], null);
        } else {
            String id = recent.get(ThreadLocalRandom.current().nextInt(recent.length()));
            if (id != null) {
                send("GET", "/v1/notifications/" + id, key, null);
            }
        }
    }

    private void callOne() {
        int u = ThreadLocalRandom.current().nextInt(users);
        String callId = "soak-" + System.nanoTime();
        HttpResponse<String> r = send("POST", "/v1/calls", key, "{\"callId\":\"" + callId + "\",\"callee\":\"user-" + u
                + "\",\"caller\":{\"id\":\"soak\",\"name\":\"Soak Caller\"},\"ringSeconds\":10}");
        if (r != null && r.statusCode() == 200 && ThreadLocalRandom.current().nextBoolean()) {
            send("DELETE", "/v1/calls/" + callId + "?reason=answered", key, null);
        }
    }

    private HttpResponse<String> send(String method, String path, String bearer, String body) {
        long started = System.nanoTime();
        try {
            HttpRequest.Builder request = HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + service.port() + path))
                    .timeout(Duration.ofSeconds(30)).header("Authorization", "Bearer " + bearer);
            if (body != null) {
                request.header("Content-Type", "application/json").method(method, HttpRequest.BodyPublishers.ofString(body));
            } else {
                request.method(method, HttpRequest.BodyPublishers.noBody());
            }
            HttpResponse<String> r = http.send(request.build(), HttpResponse.BodyHandlers.ofString());
            count(Integer.toString(r.statusCode()));
            return r;
        } catch (IOException e) {
            count("connection error");
            return null;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return null;
        } finally {
            slowest.accumulateAndGet(System.nanoTime() - started, Math::max);
        }
    }

    private void count(String status) {
        statuses.computeIfAbsent(status, s -> new AtomicLong()).incrementAndGet();
    }

    private String statusSnapshot() {
        Map<String, Long> out = new TreeMap<>();
        statuses.forEach((s, n) -> out.put(s, n.get()));
        return out.toString();
    }

    private void expect(HttpResponse<String> r, int status) {
        if (r == null || r.statusCode() != status) {
            throw new IllegalStateException("expected " + status + ", got " + (r == null ? "no answer" : r.statusCode() + " " + r.body()));
        }
    }

    private static String iphone() {
        return "{\"app\":\"" + APP + "\",\"platform\":\"ios\",\"pushToken\":\"" + Fixtures.apnsToken()
                + "\",\"voipToken\":\"" + Fixtures.apnsToken() + "\"}";
    }

    private static String android() {
        return "{\"app\":\"" + APP + "\",\"platform\":\"android\",\"pushToken\":\"" + Fixtures.fcmToken() + "\"}";
    }

    private SseStream openStream(int u) throws Exception {
        return new SseStream("http://127.0.0.1:" + service.port(), "", userTokens[u], null);
    }

    /** A tenth of the streams reconnect (a stream that cannot open now is tried again next minute). */
    private void reconnectSomeStreams() {
        for (int i = 0; i < streams.size(); i++) {
            if (ThreadLocalRandom.current().nextInt(10) == 0) {
                streams.get(i).close();
                try {
                    streams.set(i, openStream(i));
                } catch (Exception e) {
                    count("stream refused");
                }
            }
        }
    }

    // -- faults ----------------------------------------------------------------------------------------

    /** Injects the fault; answers what ends it. */
    private Runnable inject(String fault) throws Exception {
        switch (fault) {
            case "APNs answers 503" -> {
                apns.answerEveryone(MockApns.Answer.reject(RejectionReason.SERVICE_UNAVAILABLE));
                return () -> apns.answerEveryone(null);
            }
            case "FCM answers 429" -> {
                fcm.answerEveryone(FakeFcm.Answer.quotaExceeded("2"));
                return () -> fcm.answerEveryone(null);
            }
            case "Redis stopped" -> {
                redis.stop();
                return redis::start;
            }
            case "APNs drops its connections" -> {
                apns.stop();
                return apns::start;
            }
            case "PostgreSQL restarted" -> {
                postgres.close();
                return () -> {
                    try {
                        postgres = startPostgres();
                    } catch (IOException e) {
                        throw new IllegalStateException(e);
                    }
                };
            }
            case "APNs hangs" -> {
                MockApns.Gate gate = apns.hold(Duration.ofSeconds(30));
                return gate::open;
            }
            default -> throw new IllegalArgumentException(fault);
        }
    }

    private EmbeddedPostgres startPostgres() throws IOException {
        // kept on close, so the restart finds the same database
        return EmbeddedPostgres.builder().setDataDirectory(dataDir.resolve("pg")).setCleanDataDirectory(false)
                .setPort(pgPort).setServerConfig("max_connections", "200").start();
    }

    // -- measuring ----------------------------------------------------------------------------------------

    private long gatewayCount() {
        return apns.delivered() + fcm.delivered();
    }

    /** Heap after a full GC (KB), threads, open files of the service. */
    private long[] resources() throws Exception {
        long heap = service.liveHeapKb();
        long pid = service.pid();
        long threads = Files.readAllLines(Path.of("/proc/" + pid + "/status")).stream()
                .filter(l -> l.startsWith("Threads:")).mapToLong(l -> Long.parseLong(l.substring(8).trim())).findFirst().orElse(-1);
        long files;
        try (Stream<Path> fds = Files.list(Path.of("/proc/" + pid + "/fd"))) {
            files = fds.count();
        }
        return new long[] {heap, threads, files};
    }

    /** Accepted notifications not stored, or with a delivery still queued (or a routing job left). */
    private long unsettled(List<String> ids) {
        try {
            long stored = count("SELECT count(*) FROM notifications WHERE id = ANY (?)", ids);
            return (ids.size() - stored)
                    + count("SELECT count(DISTINCT notification_id) FROM deliveries WHERE status = 'queued' AND notification_id = ANY (?)", ids)
                    + count("SELECT count(DISTINCT notification_id) FROM jobs WHERE notification_id = ANY (?)", ids)
                    + count("SELECT count(*) FROM notifications WHERE NOT routed AND id = ANY (?)", ids);
        } catch (Exception e) {
            return ids.size(); // the database not answering: nothing counts as settled
        }
    }

    private long count(String sql, List<String> ids) throws Exception {
        try (Connection c = DriverManager.getConnection(postgres.getJdbcUrl("postgres", "postgres"));
             PreparedStatement q = c.prepareStatement(sql)) {
            q.setArray(1, c.createArrayOf("text", ids.toArray()));
            try (ResultSet rs = q.executeQuery()) {
                rs.next();
                return rs.getLong(1);
            }
        }
    }

    private static String quote(String s) throws Exception {
        return new com.fasterxml.jackson.databind.ObjectMapper().writeValueAsString(s);
    }

    private static int freePort() throws IOException {
        try (ServerSocket socket = new ServerSocket(0)) {
            return socket.getLocalPort();
        }
    }
}
