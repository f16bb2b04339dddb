package dev.herald.process;

import com.eatthepath.pushy.apns.server.RejectionReason;
import dev.herald.support.Api;
import dev.herald.support.FakeFcm;
import dev.herald.support.Fixtures;
import dev.herald.support.MockApns;
import io.zonky.test.db.postgres.embedded.EmbeddedPostgres;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.TestMethodOrder;
import redis.embedded.RedisServer;

import java.io.IOException;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/**
 * One Herald process (heap capped at 256 MiB) under a steady load of notifications, each to a user with
 * an iPhone and an Android phone, while its dependencies fail one after another: APNs answering 503,
 * APNs dropping every connection, APNs hanging for a minute, FCM answering 429 with
 * {@code Retry-After}, Redis stopped and started, PostgreSQL restarted. For each fault: no request gets
 * a 500 or hangs; requests that cannot be served without the missing dependency get a 503 problem with
 * {@code Retry-After}; the gateways take pushes at the full offered rate again within 5 s of the
 * dependency's return; and every notification answered 202 ends with both its pushes sent (counted in
 * PostgreSQL). A kill -9 in the middle of a burst is {@link DeliveryAfterKillIT}'s and
 * {@link ThreeNodeIT}'s. Each fault prints one line of figures.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class FaultsIT {

    private static final String TEAM = "TEAM123456";
    private static final String KEY_ID = "KEY1234567";
    private static final String APP = "faults";
    private static final int USERS = 100;
    /** Notifications a second the load offers; each is two pushes. */
    private static final int RATE = 50;
    private static final Duration FAULT = Duration.ofSeconds(10);
    private static final Duration RECOVERY = Duration.ofSeconds(5);
    /**
     * After a PostgreSQL outage: HikariCP (Micronaut's pool) retries a failed connection with a backoff
     * doubling from 10 ms to at most 5 s, not configurable, so its first connection may come up to 5 s
     * after the server is back; measured 1.1 to 5.2 s to full rate.
     */
    private static final Duration RECOVERY_AFTER_POSTGRES = Duration.ofMillis(6_500);
    /** Pushes the node may hold at once; more wait in PostgreSQL. */
    private static final int IN_FLIGHT = 1_000;
    /** A request slower than this counts as a hang. */
    private static final Duration HANG = Duration.ofSeconds(10);

    private Path dir;
    private int pgPort;
    private EmbeddedPostgres postgres;
    private RedisServer redis;
    private MockApns apns;
    private FakeFcm fcm;
    private HeraldProcess herald;
    private Api api;
    private String key;
    private String userToken;
    private Load load;
    private Sampler sampler;
    private Sampler apnsRate;
    private Sampler fcmRate;

    @BeforeAll
    void start() throws Exception {
        dir = Files.createTempDirectory(Path.of("target"), "faults-it");
        pgPort = freePort();
        int redisPort = freePort();
        // kept on close (a clean data directory is deleted then): the restart finds the same database
        postgres = EmbeddedPostgres.builder().setDataDirectory(dir.resolve("pg")).setCleanDataDirectory(false)
                .setPort(pgPort).start();
        redis = RedisServer.builder().port(redisPort).bind("127.0.0.1").setting("save \"\"").build();
        redis.start();
        String p8 = Fixtures.p8();
        apns = MockApns.create();
        apns.trust(TEAM, KEY_ID, p8);
        apns.recording(false);
        fcm = new FakeFcm();
        fcm.recording(false);
        Map<String, String> env = new java.util.HashMap<>(Map.of(
                "DATABASE_URL", postgres.getJdbcUrl("postgres", "postgres"), "DATABASE_USER", "postgres",
                "REDIS_URI", "redis://127.0.0.1:" + redisPort,
                "HERALD_ADMIN_KEY", Fixtures.ADMIN_KEY, "HERALD_MASTER_KEY", HeraldProcess.MASTER_KEY,
                "HERALD_DATA_DIR", dir.resolve("unused").toString()));
        env.putAll(Map.of(
                "HERALD_APNS_HOST", "127.0.0.1", "HERALD_APNS_PORT", Integer.toString(apns.port()),
                "HERALD_APNS_TRUSTED_CERT", apns.certificatePath().toString(),
                "HERALD_FCM_URL", fcm.baseUrl(),
                // small enough that a hung APNs could starve FCM of them, were it let
                "HERALD_DELIVERY_IN_FLIGHT", Integer.toString(IN_FLIGHT), "HERALD_APNS_MAX_IN_FLIGHT", "200"));
        herald = HeraldProcess.start("faults", env);
        herald.awaitHealthy(Duration.ofSeconds(60));
        api = herald.api();
        Api.Response app = api.post("/v1/apps", Fixtures.ADMIN_KEY, Map.of("id", APP, "name", "Faults",
                "apns", Map.of("teamId", TEAM, "keyId", KEY_ID, "privateKey", p8, "bundleId", "com.example.faults",
                        "environment", "sandbox"),
                "fcm", Map.of("serviceAccount", Fixtures.serviceAccount("faults", fcm.tokenUri()))));
        assertThat(app.status()).as(app.toString()).isEqualTo(201);
        key = api.post("/v1/apps/" + APP + "/keys", Fixtures.ADMIN_KEY,
                Map.of("name", "k", "mode", "live", "scopes", List.of("send", "users"))).json().path("key").asText();
        for (int u = 0; u < USERS; u++) {
            String token = api.post("/v1/users/user-" + u + "/tokens", key, Map.of()).json().path("token").asText();
            if (u == 0) {
                userToken = token;
            }
            assertThat(api.put("/v1/devices/iphone-" + u, token, Fixtures.iosDevice(APP, Fixtures.apnsToken())).status())
                    .isEqualTo(201);
            assertThat(api.put("/v1/devices/android-" + u, token, Fixtures.androidDevice(APP, Fixtures.fcmToken())).status())
                    .isEqualTo(201);
        }
        sampler = new Sampler(() -> apns.delivered() + fcm.delivered());
        apnsRate = new Sampler(apns::delivered);
        fcmRate = new Sampler(fcm::delivered);
        load = new Load(api, key);
        // steady state before the first fault: the load's pushes arriving at its rate
        await().atMost(Duration.ofSeconds(60)).until(() -> sampler.ratePerSecond() >= 0.8 * 2 * RATE);
    }

    @AfterAll
    void stop() throws Exception {
        if (load != null) {
            load.close();
        }
        for (Sampler s : new Sampler[] {sampler, apnsRate, fcmRate}) {
            if (s != null) {
                s.close();
            }
        }
        if (herald != null) {
            herald.close();
        }
        if (apns != null) {
            apns.close();
        }
        if (fcm != null) {
            fcm.close();
        }
        if (redis != null) {
            redis.stop();
        }
        if (postgres != null) {
            postgres.close();
        }
    }

    @Test
    @Order(1)
    void apnsAnswering503() {
        Outcome outcome = fault("APNs answers 503", FAULT, apnsRate, RATE,
                () -> apns.answerEveryone(MockApns.Answer.reject(RejectionReason.SERVICE_UNAVAILABLE)),
                () -> apns.answerEveryone(null));
        outcome.assertKeptEveryPromise();
        assertThat(outcome.during.statuses()).as("notifications are accepted while APNs is down").containsOnlyKeys(202);
    }

    @Test
    @Order(2)
    void apnsClosingEveryConnection() {
        Outcome outcome = fault("APNs drops its connections", FAULT, apnsRate, RATE, apns::stop, apns::start);
        outcome.assertKeptEveryPromise();
        assertThat(outcome.during.statuses()).containsOnlyKeys(202);
    }

    @Test
    @Order(3)
    void apnsHangingForAMinute() {
        MockApns.Gate[] gate = new MockApns.Gate[1];
        long fcmBefore = fcm.delivered();
        Outcome outcome = fault("APNs hangs for a minute", Duration.ofMinutes(1), apnsRate, RATE,
                () -> gate[0] = apns.hold(Duration.ofSeconds(90)), () -> gate[0].open());
        outcome.assertKeptEveryPromise();
        assertThat(outcome.during.statuses()).containsOnlyKeys(202);
        // the other gateway went on at the offered rate meanwhile (each notification has one Android push)
        assertThat(fcm.delivered() - fcmBefore).as("FCM pushes while APNs hung")
                .isGreaterThanOrEqualTo((long) (0.8 * outcome.during.accepted()));
        // the backlog waited in PostgreSQL: more pushes queued than the node may hold
        assertThat(outcome.backlogAtReturn).as("pushes queued in PostgreSQL when APNs came back").isGreaterThan(IN_FLIGHT);
        // the pushes turned away while it hung are due again as soon as it answers, not at their backoff
        assertThat(outcome.drained).as("backlog sent after APNs answered again").isLessThan(Duration.ofSeconds(20));
    }

    @Test
    @Order(4)
    void fcmAnswering429WithRetryAfter() {
        Outcome outcome = fault("FCM answers 429, Retry-After 2", FAULT, fcmRate, RATE,
                () -> fcm.answerEveryone(FakeFcm.Answer.quotaExceeded("2")), () -> fcm.answerEveryone(null));
        outcome.assertKeptEveryPromise();
        assertThat(outcome.during.statuses()).containsOnlyKeys(202);
    }

    @Test
    @Order(5)
    void redisStoppedAndStartedAgain() {
        long[] presenceBack = new long[1];
        Outcome outcome = fault("Redis stopped", redis::stop, () -> {
            redis.start();
            long returned = System.nanoTime();
            // what needs Redis (presence) answers again, too
            await().atMost(Duration.ofSeconds(30)).pollInterval(Duration.ofMillis(100))
                    .until(() -> api.get("/v1/users/user-0/presence", key).status() == 200);
            presenceBack[0] = System.nanoTime() - returned;
        });
        outcome.assertKeptEveryPromise();
        assertThat(outcome.during.statuses()).as("notifications need no Redis").containsOnlyKeys(202);
        System.out.printf("FAULT Redis stopped: presence answered again %d ms after Redis returned%n",
                presenceBack[0] / 1_000_000);
        assertThat(Duration.ofNanos(presenceBack[0])).isLessThanOrEqualTo(RECOVERY);
    }

    @Test
    @Order(6)
    void postgresRestartedWhileRequestsArrive() {
        Outcome outcome = fault("PostgreSQL restarted", () -> {
            try {
                postgres.close();
            } catch (IOException e) {
                throw new IllegalStateException(e);
            }
        }, () -> {
            try {
                postgres = EmbeddedPostgres.builder().setDataDirectory(dir.resolve("pg")).setCleanDataDirectory(false)
                        .setPort(pgPort).start();
            } catch (IOException e) {
                throw new IllegalStateException(e);
            }
        });
        outcome.assertKeptEveryPromise(RECOVERY_AFTER_POSTGRES);
        assertThat(outcome.during.statuses().keySet()).as("while the database is away: accepted or 503").containsAnyOf(503)
                .isSubsetOf(202, 503);
        assertThat(outcome.during.refusalsWithoutRetryAfter()).as("every 503 says when to come back").isZero();
        assertThat(api.put("/v1/devices/iphone-0", userToken,
                Fixtures.iosDevice(APP, Fixtures.apnsToken())).status()).as("registrations work again").isEqualTo(200);
    }

    // -- the fault harness ------------------------------------------------------------------------------

    private Outcome fault(String name, Runnable inject, Runnable restore) {
        return fault(name, FAULT, sampler, 2 * RATE, inject, restore);
    }

    /**
     * Injects a fault under the load, holds it for {@code hold}, restores the dependency, then measures
     * how long until the gateways take pushes at the offered rate again, and waits until every
     * notification accepted so far has both its pushes sent.
     */
    private Outcome fault(String name, Duration hold, Sampler gateway, int offered, Runnable inject, Runnable restore) {
        double baseline = gateway.ratePerSecond();
        Load.Window during = load.window();
        long injected = System.nanoTime();
        inject.run();
        long[] mostInFlight = new long[1];
        await().atMost(hold.plusSeconds(5)).pollInterval(Duration.ofMillis(500))
                .until(() -> {
                    mostInFlight[0] = Math.max(mostInFlight[0], inFlight());
                    return System.nanoTime() - injected >= hold.toNanos();
                });
        long backlog = queuedPushes();
        restore.run();
        long returned = System.nanoTime();
        during.close();
        double target = 0.8 * offered;
        await().atMost(Duration.ofSeconds(60)).pollInterval(Duration.ofMillis(100))
                .until(() -> gateway.firstWindowEndAtLeast(returned, target).isPresent());
        long recovered = gateway.firstWindowEndAtLeast(returned, target).getAsLong() - returned;
        Load.Window after = load.window();
        List<String> accepted = load.acceptedSoFar();
        long drainStarted = System.nanoTime();
        await().atMost(Duration.ofMinutes(3)).pollInterval(Duration.ofSeconds(1))
                .until(() -> sentPushes(accepted) == 2L * accepted.size());
        long drained = System.nanoTime() - returned;
        after.close();
        Outcome outcome = new Outcome(name, during, after, Duration.ofNanos(recovered), Duration.ofNanos(drained), backlog,
                mostInFlight[0]);
        System.out.printf("FAULT %s for %d s: baseline %.0f pushes/s at the gateway; during it %s; %d pushes queued in "
                        + "PostgreSQL at its end, at most %d of them held by the node; %.0f%% of the gateway's offered "
                        + "rate again %d ms after the return; all %d accepted notifications sent %.1f s after it "
                        + "(checked in %.1f s); heap %s%n",
                name, hold.toSeconds(), baseline, during, backlog, mostInFlight[0], 80.0, recovered / 1_000_000,
                accepted.size(), drained / 1e9, (System.nanoTime() - drainStarted) / 1e9, heapUsed());
        return outcome;
    }

    private record Outcome(String name, Load.Window during, Load.Window after, Duration recovered, Duration drained,
                           long backlogAtReturn, long mostInFlight) {

        void assertKeptEveryPromise() {
            assertKeptEveryPromise(RECOVERY);
        }

        void assertKeptEveryPromise(Duration recovery) {
            assertThat(during.statuses().keySet()).as(name + ": statuses during the fault").doesNotContain(500);
            assertThat(after.statuses().keySet()).as(name + ": statuses after it").containsOnly(202);
            assertThat(during.slowest()).as(name + ": the slowest request during the fault").isLessThan(HANG);
            assertThat(after.slowest()).as(name + ": the slowest request after it").isLessThan(HANG);
            assertThat(during.notProblems()).as(name + ": refusals that are not problem documents").isZero();
            assertThat(recovered).as(name + ": time to full rate after the return").isLessThanOrEqualTo(recovery);
            assertThat(mostInFlight).as(name + ": pushes the node held at once").isLessThanOrEqualTo(IN_FLIGHT);
        }
    }

    private String heapUsed() {
        try {
            String metrics = api.get("/metrics", null).body();
            double used = metrics.lines().filter(l -> l.startsWith("jvm_memory_used_bytes{area=\"heap\""))
                    .mapToDouble(l -> Double.parseDouble(l.substring(l.lastIndexOf(' ') + 1))).sum();
            return String.format("%.0f MiB used of 256", used / (1 << 20));
        } catch (RuntimeException e) {
            return "unknown";
        }
    }

    /** The node's {@code herald_push_in_flight} gauge (0 while it cannot be read). */
    private long inFlight() {
        try {
            return api.get("/metrics", null).body().lines().filter(l -> l.startsWith("herald_push_in_flight"))
                    .mapToLong(l -> (long) Double.parseDouble(l.substring(l.lastIndexOf(' ') + 1))).sum();
        } catch (RuntimeException e) {
            return 0;
        }
    }

    private long queuedPushes() {
        try {
            return query("SELECT count(*) FROM deliveries WHERE channel = 'push' AND status = 'queued'", null);
        } catch (IllegalStateException databaseAway) {
            return -1;
        }
    }

    private long sentPushes(List<String> notificationIds) {
        return query("SELECT count(*) FROM deliveries WHERE channel = 'push' AND status = 'sent' AND notification_id = ANY (?)",
                notificationIds.toArray(String[]::new));
    }

    private long query(String sql, String[] ids) {
        try (Connection c = DriverManager.getConnection(postgres.getJdbcUrl("postgres", "postgres"));
             PreparedStatement statement = c.prepareStatement(sql)) {
            if (ids != null) {
                statement.setArray(1, c.createArrayOf("text", ids));
            }
            try (ResultSet rs = statement.executeQuery()) {
                rs.next();
                return rs.getLong(1);
            }
        } catch (SQLException e) {
            throw new IllegalStateException(e);
        }
    }

    private static int freePort() throws IOException {
        try (ServerSocket socket = new ServerSocket(0)) {
            return socket.getLocalPort();
        }
    }

    /**
     * Notifications at {@link #RATE} a second, each to a random user's devices, from a pool of senders
     * (a request that hangs does not slow the pace; when every sender is busy a tick is skipped).
     */
    static final class Load implements AutoCloseable {

        private final Api api;
        private final String key;
        private final ScheduledExecutorService ticks = Executors.newSingleThreadScheduledExecutor();
        private final ThreadPoolExecutor senders = (ThreadPoolExecutor) Executors.newFixedThreadPool(32);
        private final ConcurrentLinkedQueue<String> accepted = new ConcurrentLinkedQueue<>();
        private final List<Window> open = new java.util.concurrent.CopyOnWriteArrayList<>();
        private final AtomicLong sequence = new AtomicLong();

        Load(Api api, String key) {
            this.api = api;
            this.key = key;
            ticks.scheduleAtFixedRate(this::tick, 0, 1000 / RATE, TimeUnit.MILLISECONDS);
        }

        private void tick() {
            if (senders.getActiveCount() >= senders.getMaximumPoolSize()) {
                open.forEach(w -> w.skipped.incrementAndGet());
                return;
            }
            senders.execute(this::sendOne);
        }

        private void sendOne() {
            long n = sequence.incrementAndGet();
            long started = System.nanoTime();
            Api.Response r;
            try {
                r = api.post("/v1/notifications", key, Map.of("to", Map.of("users", List.of("user-" + (n % USERS))),
                        "title", "Load " + n));
            } catch (RuntimeException e) {
                open.forEach(w -> w.record(-1, System.nanoTime() - started, true, true));
                return;
            }
            long took = System.nanoTime() - started;
            if (r.status() == 202) {
                accepted.add(r.json().path("id").asText());
            }
            boolean problem = r.status() == 202 || r.contentType().startsWith("application/problem+json");
            boolean retryAfter = r.status() != 503 || r.headers().firstValue("Retry-After").isPresent();
            open.forEach(w -> w.record(r.status(), took, problem, retryAfter));
        }

        List<String> acceptedSoFar() {
            return new ArrayList<>(accepted);
        }

        Window window() {
            Window w = new Window();
            open.add(w);
            return w;
        }

        @Override
        public void close() throws InterruptedException {
            ticks.shutdownNow();
            senders.shutdown();
            senders.awaitTermination(40, TimeUnit.SECONDS);
        }

        /** What the load saw between {@link #window()} and {@link #close()}. */
        final class Window implements AutoCloseable {
            private final Map<Integer, AtomicInteger> statuses = new ConcurrentHashMap<>();
            private final AtomicLong slowest = new AtomicLong();
            private final AtomicInteger notProblems = new AtomicInteger();
            private final AtomicInteger noRetryAfter = new AtomicInteger();
            private final AtomicInteger skipped = new AtomicInteger();

            void record(int status, long nanos, boolean problem, boolean retryAfter) {
                statuses.computeIfAbsent(status, s -> new AtomicInteger()).incrementAndGet();
                slowest.accumulateAndGet(nanos, Math::max);
                if (!problem) {
                    notProblems.incrementAndGet();
                }
                if (!retryAfter) {
                    noRetryAfter.incrementAndGet();
                }
            }

            Map<Integer, Integer> statuses() {
                Map<Integer, Integer> out = new java.util.TreeMap<>();
                statuses.forEach((s, n) -> out.put(s, n.get()));
                return out;
            }

            int accepted() {
                return statuses.getOrDefault(202, new AtomicInteger()).get();
            }

            Duration slowest() {
                return Duration.ofNanos(slowest.get());
            }

            int notProblems() {
                return notProblems.get();
            }

            int refusalsWithoutRetryAfter() {
                return noRetryAfter.get();
            }

            @Override
            public void close() {
                open.remove(this);
            }

            @Override
            public String toString() {
                return "statuses " + statuses() + ", slowest request " + slowest().toMillis() + " ms, "
                        + skipped.get() + " ticks skipped (every sender waiting)";
            }
        }
    }

    /** Samples a running count (pushes the gateways took) every 100 ms, for rates over 1 s windows. */
    static final class Sampler implements AutoCloseable {

        private record Sample(long at, long count) {
        }

        private final java.util.function.LongSupplier counter;
        private final ScheduledExecutorService timer = Executors.newSingleThreadScheduledExecutor();
        private final List<Sample> samples = new java.util.concurrent.CopyOnWriteArrayList<>();

        Sampler(java.util.function.LongSupplier counter) {
            this.counter = counter;
            timer.scheduleAtFixedRate(() -> samples.add(new Sample(System.nanoTime(), counter.getAsLong())),
                    0, 100, TimeUnit.MILLISECONDS);
        }

        /** The rate over the last 5 s. */
        double ratePerSecond() {
            List<Sample> all = List.copyOf(samples);
            if (all.size() < 2) {
                return 0;
            }
            Sample last = all.get(all.size() - 1);
            Sample first = all.stream().filter(s -> last.at - s.at <= 5_000_000_000L).findFirst().orElse(last);
            return last.at == first.at ? 0 : (last.count - first.count) * 1e9 / (last.at - first.at);
        }

        /**
         * When the first 1 s window starting at or after {@code since} with at least {@code rate} a second
         * ended (nanoTime), if there was one yet.
         */
        java.util.OptionalLong firstWindowEndAtLeast(long since, double rate) {
            List<Sample> all = List.copyOf(samples);
            for (int i = 0; i < all.size(); i++) {
                Sample a = all.get(i);
                if (a.at < since) {
                    continue;
                }
                for (int j = i + 1; j < all.size(); j++) {
                    Sample b = all.get(j);
                    if (b.at - a.at >= 1_000_000_000L) {
                        if ((b.count - a.count) * 1e9 / (b.at - a.at) >= rate) {
                            return java.util.OptionalLong.of(b.at);
                        }
                        break;
                    }
                }
            }
            return java.util.OptionalLong.empty();
        }

        @Override
        public void close() {
            timer.shutdownNow();
        }
    }
}
