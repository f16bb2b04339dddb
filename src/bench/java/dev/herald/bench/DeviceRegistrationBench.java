package dev.herald.bench;

import io.netty.bootstrap.Bootstrap;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFuture;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.SimpleChannelInboundHandler;
import io.netty.channel.nio.NioIoHandler;
import io.netty.channel.socket.SocketChannel;
import io.netty.channel.socket.nio.NioSocketChannel;
import io.netty.handler.codec.http.DefaultFullHttpRequest;
import io.netty.handler.codec.http.FullHttpRequest;
import io.netty.handler.codec.http.FullHttpResponse;
import io.netty.handler.codec.http.HttpClientCodec;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpMethod;
import io.netty.handler.codec.http.HttpObjectAggregator;
import io.netty.handler.codec.http.HttpUtil;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.util.AsciiString;
import org.HdrHistogram.Histogram;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * Device registrations ({@code PUT /v1/devices/{installationId}}) through the HTTP API of a real
 * Herald process, against a table already holding a million devices.
 *
 * <p>Method:
 * <ol>
 *   <li>Starts {@code java -Xmx512m -jar target/herald.jar} as a child process on a free port with a
 *       fresh {@code HERALD_DATA_DIR} (so it starts its embedded PostgreSQL and Redis), and waits for
 *       {@code GET /health} to answer 200.</li>
 *   <li>Through the API: creates the app {@code bench}, an app key with scope {@code users}, and a user
 *       token for each of {@code bench.users} users.</li>
 *   <li>Seeds {@code bench.devices} devices straight into {@code devices} with one
 *       {@code INSERT ... SELECT FROM generate_series}, then {@code VACUUM (ANALYZE)} and
 *       {@code CHECKPOINT} so that neither autovacuum nor a checkpoint of the seed lands inside the
 *       measurement.</li>
 *   <li>Keeps exactly {@code bench.concurrency} requests in flight (one per keep-alive connection,
 *       closed loop, one Netty event-loop thread) for {@code bench.warmup} requests (not measured;
 *       100,000 by default because with 2 cores 20,000 left the service's C2 compiler using a third of
 *       a core during the measurement),
 *       then for {@code bench.seconds} seconds (measured). Even requests register a NEW installation
 *       (fresh id, fresh token: 201 expected), odd ones RE-REGISTER a random seeded installation with
 *       the token of its owner (its own push token, or with probability {@code bench.refreshRatio} a
 *       refreshed one: 200 expected). Anything else is an error. Latency is from writing the request
 *       to reading the whole answer.</li>
 *   <li>Reports requests, errors, throughput, latency percentiles, the service's RSS and heap, and
 *       what explains them: the CPU each party used during the measurement (service JVM and its
 *       busiest threads, PostgreSQL, this load generator, anything else on the machine), the
 *       service's GC pauses and registrations per database transaction (from {@code GET /metrics}),
 *       and autovacuums and checkpoints that ran; on stdout and as Markdown in
 *       {@code target/bench-device-registration.md}.</li>
 *   <li>Stops the service with SIGTERM and waits for it to exit.</li>
 * </ol>
 *
 * <p>Run with {@code ./mvnw -B -Pbench verify} (options: {@code -Dbench.seconds=30},
 * {@code -Dbench.warmup=100000}, {@code -Dbench.concurrency=64}, {@code -Dbench.devices=1000000},
 * {@code -Dbench.users=1000}, {@code -Dbench.refreshRatio=0.1}).
 */
public final class DeviceRegistrationBench {

    private static final String APP = "bench";
    private static final String ADMIN_KEY = "hk_admin_bench_" + Long.toHexString(System.nanoTime())
            + "0123456789abcdefghijklmnopqrstuvwxyz";
    private static final Pattern PG_LINE = Pattern.compile("PostgreSQL: embedded, data in (.+?), port (\\d+)");
    private static final AsciiString APPLICATION_JSON = AsciiString.cached("application/json");
    private static final char[] HEX = "0123456789abcdef".toCharArray();

    private final Path jar = Paths.get(System.getProperty("herald.jar", "target/herald.jar")).toAbsolutePath();
    private final Path dataDir = Paths.get(System.getProperty("bench.dataDir", "target/bench-data")).toAbsolutePath();
    private final Path logFile = Paths.get(System.getProperty("bench.log", "target/bench-service.log")).toAbsolutePath();
    private final Path report = Paths.get(System.getProperty("bench.report", "target/bench-device-registration.md"))
            .toAbsolutePath();
    private final int seconds = Integer.getInteger("bench.seconds", 30);
    private final int warmup = Integer.getInteger("bench.warmup", 100_000);
    private final int concurrency = Integer.getInteger("bench.concurrency", 64);
    private final int devices = Integer.getInteger("bench.devices", 1_000_000);
    private final int users = Integer.getInteger("bench.users", 1_000);
    private final double refreshRatio = Double.parseDouble(System.getProperty("bench.refreshRatio", "0.1"));

    private final HttpClient setupClient = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
            .connectTimeout(Duration.ofSeconds(5)).build();
    private Process service;
    private int port;
    private URI base;

    public static void main(String[] args) throws Exception {
        int exit = new DeviceRegistrationBench().run();
        System.exit(exit);
    }

    private int run() throws Exception {
        Runtime.getRuntime().addShutdownHook(new Thread(this::stopService, "bench-stop-service"));
        startService();
        try {
            Setup setup = setUp();
            Seeding seeding = seed();
            return measure(setup, seeding);
        } finally {
            stopService();
        }
    }

    // ---------------------------------------------------------------- service process

    private void startService() throws IOException, InterruptedException {
        if (!Files.isRegularFile(jar)) {
            throw new IllegalStateException("No service jar at " + jar + "; run ./mvnw -Pbench verify");
        }
        deleteRecursively(dataDir);
        Files.createDirectories(logFile.getParent());
        port = freePort();
        base = URI.create("http://127.0.0.1:" + port);
        String javaBin = Paths.get(System.getProperty("java.home"), "bin", "java").toString();
        List<String> command = new ArrayList<>(List.of(javaBin, "-Xmx512m"));
        // e.g. -Dbench.serviceJvmArgs=-XX:StartFlightRecording=filename=target/service.jfr to profile the service
        String extra = System.getProperty("bench.serviceJvmArgs", "");
        if (!extra.isBlank()) {
            command.addAll(List.of(extra.trim().split("\\s+")));
        }
        command.addAll(List.of("-jar", jar.toString()));
        ProcessBuilder builder = new ProcessBuilder(command)
                .redirectErrorStream(true)
                .redirectOutput(logFile.toFile());
        builder.environment().remove("DATABASE_URL");
        builder.environment().remove("REDIS_URI");
        builder.environment().put("PORT", Integer.toString(port));
        builder.environment().put("HERALD_DATA_DIR", dataDir.toString());
        builder.environment().put("HERALD_ADMIN_KEY", ADMIN_KEY);
        // the limits stay on (their cost is part of every request) but above what one load generator sends
        builder.environment().put("HERALD_LIMITS_KEY_PER_SECOND", "1000000");
        builder.environment().put("HERALD_LIMITS_KEY_BURST", "1000000");
        builder.environment().put("HERALD_LIMITS_USER_PER_SECOND", "1000000");
        builder.environment().put("HERALD_LIMITS_USER_BURST", "1000000");
        builder.environment().put("HERALD_LIMITS_DEVICE_PER_MINUTE", "1000000");
        long started = System.nanoTime();
        service = builder.start();
        log("service: pid %d, port %d, log %s", service.pid(), port, logFile);

        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(180);
        HttpRequest health = HttpRequest.newBuilder(base.resolve("/health")).timeout(Duration.ofSeconds(2)).build();
        while (true) {
            if (!service.isAlive()) {
                throw new IllegalStateException("The service exited with " + service.exitValue() + "; see " + logFile);
            }
            try {
                if (setupClient.send(health, HttpResponse.BodyHandlers.discarding()).statusCode() == 200) {
                    break;
                }
            } catch (IOException notYet) {
                // not listening yet
            }
            if (System.nanoTime() > deadline) {
                throw new IllegalStateException("GET /health did not answer 200 within 180 s; see " + logFile);
            }
            java.util.concurrent.locks.LockSupport.parkNanos(java.util.concurrent.TimeUnit.MILLISECONDS.toNanos(100));
        }
        log("service: healthy after %.1f s", (System.nanoTime() - started) / 1e9);
    }

    private void stopService() {
        Process p = service;
        if (p == null || !p.isAlive()) {
            return;
        }
        long started = System.nanoTime();
        p.destroy(); // SIGTERM: Herald's shutdown hooks stop the embedded PostgreSQL and Redis
        try {
            if (!p.waitFor(60, TimeUnit.SECONDS)) {
                log("service: still running 60 s after SIGTERM, killing it");
                p.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
            } else {
                log("service: exited with %d, %.1f s after SIGTERM", p.exitValue(), (System.nanoTime() - started) / 1e9);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    // ---------------------------------------------------------------- app, key, user tokens

    private record Setup(String[] userTokens) {
    }

    private Setup setUp() throws IOException, InterruptedException {
        expect(post("/v1/apps", ADMIN_KEY, "{\"id\":\"" + APP + "\",\"name\":\"Bench\"}"), 201, "create app");
        String key = field(expect(post("/v1/apps/" + APP + "/keys", ADMIN_KEY,
                "{\"name\":\"bench\",\"mode\":\"live\",\"scopes\":[\"users\"]}"), 201, "create app key"), "key");
        long started = System.nanoTime();
        String[] tokens = new String[users];
        List<CompletableFuture<Void>> inFlight = new ArrayList<>();
        for (int u = 0; u < users; u++) {
            int user = u;
            HttpRequest request = HttpRequest.newBuilder(base.resolve("/v1/users/" + userId(u) + "/tokens"))
                    .header("Authorization", "Bearer " + key).header("Content-Type", "application/json")
                    .POST(HttpRequest.BodyPublishers.ofString("{\"ttlSeconds\":86400}")).build();
            inFlight.add(setupClient.sendAsync(request, HttpResponse.BodyHandlers.ofString()).thenAccept(r ->
                    tokens[user] = field(expect(r, 201, "mint user token"), "token")));
            if (inFlight.size() == 8) {
                inFlight.remove(0).join();
            }
        }
        inFlight.forEach(CompletableFuture::join);
        log("setup: app '%s', app key, %d user tokens in %.1f s", APP, users, (System.nanoTime() - started) / 1e9);
        return new Setup(tokens);
    }

    private HttpResponse<String> post(String path, String bearer, String json) throws IOException, InterruptedException {
        return setupClient.send(HttpRequest.newBuilder(base.resolve(path))
                .header("Authorization", "Bearer " + bearer).header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(json)).build(), HttpResponse.BodyHandlers.ofString());
    }

    private static HttpResponse<String> expect(HttpResponse<String> response, int status, String what) {
        if (response.statusCode() != status) {
            throw new IllegalStateException(what + ": expected " + status + ", got " + response.statusCode() + " "
                    + response.body());
        }
        return response;
    }

    private static String field(HttpResponse<String> response, String name) {
        Matcher m = Pattern.compile("\"" + name + "\"\\s*:\\s*\"([^\"]+)\"").matcher(response.body());
        if (!m.find()) {
            throw new IllegalStateException("no \"" + name + "\" in " + response.body());
        }
        return m.group(1);
    }

    private static String userId(int u) {
        return "bench-user-" + u;
    }

    // ---------------------------------------------------------------- seeding

    private record Seeding(double insertSeconds, double vacuumAnalyzeSeconds, double checkpointSeconds,
                           Path postgresData, String jdbcUrl) {
    }

    /**
     * Seeded installation i (1..devices) is {@code seed-<i>} of user {@code i % users}; even i are iOS
     * with token {@code md5(i)||md5(i+1)} (64 hex), odd i Android with {@link #seededFcmToken}.
     */
    private Seeding seed() throws IOException, SQLException {
        String log = Files.readString(logFile);
        Matcher m = PG_LINE.matcher(log);
        if (!m.find()) {
            throw new IllegalStateException("No \"PostgreSQL: embedded ...\" line in " + logFile);
        }
        Path pgData = Paths.get(m.group(1));
        String url = "jdbc:postgresql://127.0.0.1:" + m.group(2) + "/postgres";
        log("seed: %s (data in %s)", url, pgData);
        try (Connection c = DriverManager.getConnection(url, "postgres", ""); Statement s = c.createStatement()) {
            long t0 = System.nanoTime();
            int inserted = s.executeUpdate("""
                    INSERT INTO devices (installation_id, app_id, user_id, platform, push_token, push_token_updated_at,
                                         created_at, updated_at, last_seen_at)
                    SELECT 'seed-' || i, 'bench', 'bench-user-' || (i %% %d),
                           CASE WHEN i %% 2 = 0 THEN 'ios' ELSE 'android' END,
                           CASE WHEN i %% 2 = 0 THEN md5(i::text) || md5((i + 1)::text)
                                ELSE 'fcm-' || i || ':' || md5(i::text) || md5((i + 1)::text) || md5((i + 2)::text) END,
                           now(), now(), now(), now()
                    FROM generate_series(1, %d) AS i""".formatted(users, devices));
            long t1 = System.nanoTime();
            s.execute("VACUUM (ANALYZE) devices");
            long t2 = System.nanoTime();
            s.execute("CHECKPOINT");
            long t3 = System.nanoTime();
            Seeding seeding = new Seeding((t1 - t0) / 1e9, (t2 - t1) / 1e9, (t3 - t2) / 1e9, pgData, url);
            log("seed: %,d devices inserted in %.1f s (%,.0f rows/s); VACUUM (ANALYZE) %.1f s; CHECKPOINT %.1f s",
                    inserted, seeding.insertSeconds, inserted / seeding.insertSeconds, seeding.vacuumAnalyzeSeconds,
                    seeding.checkpointSeconds);
            return seeding;
        }
    }

    private static String seededFcmToken(int i, MessageDigest md5) {
        return "fcm-" + i + ":" + md5Hex(i, md5) + md5Hex(i + 1, md5) + md5Hex(i + 2, md5);
    }

    private static String seededApnsToken(int i, MessageDigest md5) {
        return md5Hex(i, md5) + md5Hex(i + 1, md5);
    }

    private static String md5Hex(int i, MessageDigest md5) {
        byte[] digest = md5.digest(Integer.toString(i).getBytes(StandardCharsets.US_ASCII));
        char[] out = new char[32];
        for (int k = 0; k < 16; k++) {
            out[2 * k] = HEX[(digest[k] >> 4) & 0xf];
            out[2 * k + 1] = HEX[digest[k] & 0xf];
        }
        return new String(out);
    }

    // ---------------------------------------------------------------- load

    /** What one phase (warm-up or measurement) issues and has seen. Touched only on the event-loop thread. */
    private static final class Phase {
        final String name;
        final long maxRequests;
        final long deadlineNanos;
        final Histogram latencyMicros = new Histogram(TimeUnit.MINUTES.toMicros(2), 3);
        /** The same latencies, one histogram per second of the phase: shows whether the tail is steady or bursts. */
        final List<Histogram> perSecond = new ArrayList<>();
        final CompletableFuture<Void> done = new CompletableFuture<>();
        final List<String> firstErrors = new ArrayList<>();
        long issued;
        long completed;
        long errors;
        long created;
        long updated;
        int active;
        long startNanos;
        long lastCompletionNanos;

        Phase(String name, long maxRequests, long deadlineNanos) {
            this.name = name;
            this.maxRequests = maxRequests;
            this.deadlineNanos = deadlineNanos;
        }

        boolean mayIssue() {
            return issued < maxRequests && System.nanoTime() < deadlineNanos;
        }

        void error(String what) {
            errors++;
            if (firstErrors.size() < 5) {
                firstErrors.add(what);
            }
        }
    }

    /** Makes the request bodies: single-threaded (the event loop), no JSON library, no per-request formatting. */
    private final class Requests {
        private final String[] bearers;
        private final SplittableRandom random = new SplittableRandom(42);
        private final MessageDigest md5;
        private final long runNonceValue = System.currentTimeMillis();
        private final String runNonce = Long.toHexString(runNonceValue);
        private final String host;
        private long sequence;

        Requests(String[] userTokens) {
            bearers = new String[userTokens.length];
            for (int u = 0; u < userTokens.length; u++) {
                bearers[u] = "Bearer " + userTokens[u];
            }
            try {
                md5 = MessageDigest.getInstance("MD5");
            } catch (NoSuchAlgorithmException e) {
                throw new IllegalStateException(e);
            }
            host = "127.0.0.1:" + port;
        }

        /** The next request; {@code expectCreated[0]} tells whether 201 (new installation) is expected. */
        FullHttpRequest next(boolean[] expectCreated) {
            long n = sequence++;
            String installationId;
            String bearer;
            boolean ios;
            String token;
            if ((n & 1) == 0) {
                // a NEW installation with a fresh token
                installationId = "new-" + runNonce + "-" + n;
                bearer = bearers[random.nextInt(bearers.length)];
                ios = (n & 2) == 0;
                token = freshToken(ios, n);
                expectCreated[0] = true;
            } else {
                // a RE-REGISTRATION of a seeded installation by its owner
                int i = 1 + random.nextInt(devices);
                installationId = "seed-" + i;
                bearer = bearers[i % bearers.length];
                ios = (i & 1) == 0;
                if (random.nextDouble() < refreshRatio) {
                    token = freshToken(ios, n);
                } else {
                    token = ios ? seededApnsToken(i, md5) : seededFcmToken(i, md5);
                }
                expectCreated[0] = false;
            }
            String json = "{\"app\":\"" + APP + "\",\"platform\":\"" + (ios ? "ios" : "android")
                    + "\",\"pushToken\":\"" + token + "\"}";
            byte[] body = json.getBytes(StandardCharsets.US_ASCII);
            FullHttpRequest request = new DefaultFullHttpRequest(HttpVersion.HTTP_1_1, HttpMethod.PUT,
                    "/v1/devices/" + installationId, Unpooled.wrappedBuffer(body));
            request.headers()
                    .set(HttpHeaderNames.HOST, host)
                    .set(HttpHeaderNames.AUTHORIZATION, bearer)
                    .set(HttpHeaderNames.CONTENT_TYPE, APPLICATION_JSON)
                    .set(HttpHeaderNames.ACCEPT, APPLICATION_JSON)
                    .setInt(HttpHeaderNames.CONTENT_LENGTH, body.length);
            return request;
        }

        /** A token no seeded device holds: APNs 64 hex starting "ff" + run + sequence; FCM "fcm-new-...". */
        private String freshToken(boolean ios, long n) {
            char[] hex = new char[64];
            long[] words = {0xffL << 56 | (runNonceValue & 0xffffffffffffffL), n,
                    random.nextLong(), random.nextLong()};
            for (int w = 0; w < 4; w++) {
                for (int k = 0; k < 16; k++) {
                    hex[w * 16 + k] = HEX[(int) (words[w] >>> (60 - 4 * k)) & 0xf];
                }
            }
            String h = new String(hex);
            return ios ? h : "fcm-new-" + runNonce + "-" + n + ":" + h + h;
        }
    }

    /** One keep-alive connection with at most one request outstanding (so the in-flight count is the number of connections). */
    private final class Conn extends SimpleChannelInboundHandler<FullHttpResponse> {
        private final Bootstrap bootstrap;
        private final Requests requests;
        private final boolean[] expectCreated = new boolean[1];
        private Channel channel;
        private Phase phase;
        private boolean outstanding;
        private long sentAt;

        Conn(Bootstrap bootstrap, Requests requests) {
            this.bootstrap = bootstrap;
            this.requests = requests;
        }

        void connect() {
            channel = newConnection().syncUninterruptibly().channel();
        }

        private ChannelFuture newConnection() {
            return bootstrap.clone().handler(new ChannelInitializer<SocketChannel>() {
                @Override
                protected void initChannel(SocketChannel ch) {
                    ch.pipeline().addLast(new HttpClientCodec(), new HttpObjectAggregator(1 << 20), Conn.this);
                }
            }).connect("127.0.0.1", port);
        }

        /** Joins a phase; called on the event loop. */
        void start(Phase p) {
            phase = p;
            sendOrLeave();
        }

        private void sendOrLeave() {
            if (!phase.mayIssue()) {
                if (--phase.active == 0) {
                    phase.done.complete(null);
                }
                return;
            }
            phase.issued++;
            FullHttpRequest request = requests.next(expectCreated);
            outstanding = true;
            sentAt = System.nanoTime();
            channel.writeAndFlush(request, channel.voidPromise());
        }

        @Override
        protected void channelRead0(ChannelHandlerContext ctx, FullHttpResponse response) {
            long now = System.nanoTime();
            outstanding = false;
            Phase p = phase;
            p.completed++;
            p.lastCompletionNanos = now;
            long micros = Math.min((now - sentAt) / 1_000, p.latencyMicros.getHighestTrackableValue());
            p.latencyMicros.recordValue(micros);
            int second = (int) ((now - p.startNanos) / 1_000_000_000L);
            while (p.perSecond.size() <= second) {
                p.perSecond.add(new Histogram(TimeUnit.MINUTES.toMicros(2), 2));
            }
            p.perSecond.get(second).recordValue(micros);
            int status = response.status().code();
            int expected = expectCreated[0] ? 201 : 200;
            if (status == expected) {
                if (expectCreated[0]) {
                    p.created++;
                } else {
                    p.updated++;
                }
            } else {
                p.error((expectCreated[0] ? "new" : "re-registration") + ": " + status + " "
                        + response.content().toString(StandardCharsets.UTF_8));
            }
            if (!ctx.channel().isActive() || !HttpUtil.isKeepAlive(response)) {
                return; // channelInactive reconnects
            }
            sendOrLeave();
        }

        @Override
        public void channelInactive(ChannelHandlerContext ctx) {
            if (phase == null) {
                return;
            }
            if (outstanding) {
                outstanding = false;
                phase.completed++;
                phase.error("connection closed with a request outstanding");
            }
            // reconnect, then carry on in the same phase
            ChannelFuture reconnecting = newConnection();
            reconnecting.addListener(f -> {
                if (f.isSuccess()) {
                    channel = reconnecting.channel();
                    sendOrLeave();
                } else {
                    phase.error("reconnect failed: " + f.cause());
                    if (--phase.active == 0) {
                        phase.done.complete(null);
                    }
                }
            });
        }

        @Override
        public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
            ctx.close(); // channelInactive counts the error and reconnects
        }

        void close() {
            phase = null;
            channel.close().syncUninterruptibly();
        }
    }

    private Phase runPhase(EventLoopGroup group, List<Conn> conns, Phase phase, long timeoutSeconds) throws Exception {
        group.next().submit(() -> {
            phase.startNanos = System.nanoTime();
            phase.active = conns.size();
            for (Conn c : conns) {
                c.start(phase);
            }
        }).sync();
        phase.done.get(timeoutSeconds, TimeUnit.SECONDS);
        return phase;
    }

    // ---------------------------------------------------------------- measurement and report

    private int measure(Setup setup, Seeding seeding) throws Exception {
        EventLoopGroup group = new MultiThreadIoEventLoopGroup(1, NioIoHandler.newFactory());
        try {
            Bootstrap bootstrap = new Bootstrap().group(group).channel(NioSocketChannel.class)
                    .option(ChannelOption.TCP_NODELAY, true)
                    .option(ChannelOption.CONNECT_TIMEOUT_MILLIS, 5_000);
            Requests requests = new Requests(setup.userTokens());
            List<Conn> conns = new ArrayList<>();
            for (int k = 0; k < concurrency; k++) {
                Conn c = new Conn(bootstrap, requests);
                c.connect();
                conns.add(c);
            }

            // an operator's Prometheus scrapes all the time: load that code before the JIT settles, not mid-measurement
            metricsText();
            Phase warm = runPhase(group, conns, new Phase("warm-up", warmup, Long.MAX_VALUE), 600);
            double warmSeconds = (warm.lastCompletionNanos - warm.startNanos) / 1e9;
            log("warm-up: %,d requests in %.1f s (%,.0f req/s), %d errors%s", warm.completed, warmSeconds,
                    warm.completed / warmSeconds, warm.errors, warm.firstErrors.isEmpty() ? "" : ": " + warm.firstErrors);

            String metricsBefore = metricsText();
            long[] pgBefore = postgresActivity(seeding.jdbcUrl());
            CpuSample cpuBefore = cpuSample(seeding.postgresData());
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
            Phase run = runPhase(group, conns, new Phase("measurement", Long.MAX_VALUE, deadline), seconds + 120L);
            CpuSample cpuAfter = cpuSample(seeding.postgresData());
            log("p99 of each second (ms): %s", run.perSecond.stream()
                    .map(h -> String.format("%.0f", h.getValueAtPercentile(99) / 1000.0))
                    .collect(java.util.stream.Collectors.joining(" ")));
            for (Conn c : conns) {
                c.close();
            }

            long rssKb = rssKb(service.pid());
            String metricsAfter = metricsText();
            long[] pgAfter = postgresActivity(seeding.jdbcUrl());
            long[] pgDuring = new long[pgAfter.length];
            for (int k = 0; k < pgAfter.length; k++) {
                pgDuring[k] = pgAfter[k] - pgBefore[k];
            }
            String table = table(run, seeding, cpuBefore, cpuAfter, rssKb, metricsBefore, metricsAfter, pgDuring);
            System.out.println();
            System.out.println(table);
            Files.createDirectories(report.getParent());
            Files.writeString(report, markdown(table));
            log("report: %s", report);
            if (!run.firstErrors.isEmpty()) {
                System.out.println("First errors:");
                run.firstErrors.forEach(e -> System.out.println("  " + e));
            }
            return run.errors == 0 && warm.errors == 0 ? 0 : 1;
        } finally {
            group.shutdownGracefully(0, 1, TimeUnit.SECONDS).syncUninterruptibly();
        }
    }

    private String table(Phase run, Seeding seeding, CpuSample before, CpuSample after, long rssKb,
                         String metricsBefore, String metricsAfter, long[] pgDuring) {
        double heapUsed = sumOf(metricsAfter, "jvm_memory_used_bytes{", "area=\"heap\"");
        double elapsed = (run.lastCompletionNanos - run.startNanos) / 1e9;
        double throughput = run.completed / elapsed;
        Histogram h = run.latencyMicros;
        double p99 = h.getValueAtPercentile(99) / 1000.0;
        double wall = (after.wallNanos - before.wallNanos) / 1e9;
        boolean met = throughput >= 5_000 && p99 < 20 && run.errors == 0;
        List<String[]> rows = new ArrayList<>();
        rows.add(row("seeded devices", "%,d (%,d users)", devices, users));
        rows.add(row("seeding: INSERT ... SELECT generate_series", "%.1f s (%,.0f rows/s)", seeding.insertSeconds,
                devices / seeding.insertSeconds));
        rows.add(row("seeding: VACUUM (ANALYZE) / CHECKPOINT", "%.1f s / %.1f s", seeding.vacuumAnalyzeSeconds,
                seeding.checkpointSeconds));
        rows.add(row("concurrency (requests in flight)", "%d", concurrency));
        rows.add(row("measured for", "%.1f s (after %,d warm-up requests)", elapsed, warmup));
        rows.add(row("requests", "%,d (%,d new -> 201, %,d re-registrations -> 200)", run.completed, run.created,
                run.updated));
        rows.add(row("errors", "%,d", run.errors));
        rows.add(row("throughput", "%,.0f req/s", throughput));
        rows.add(row("latency p50", "%.2f ms", h.getValueAtPercentile(50) / 1000.0));
        rows.add(row("latency p90", "%.2f ms", h.getValueAtPercentile(90) / 1000.0));
        rows.add(row("latency p99", "%.2f ms", p99));
        rows.add(row("latency p99.9", "%.2f ms", h.getValueAtPercentile(99.9) / 1000.0));
        rows.add(row("latency max", "%.2f ms", h.getMaxValue() / 1000.0));
        rows.add(row("service RSS (VmRSS)", "%,d MiB", rssKb / 1024));
        rows.add(row("service heap used", "%,.0f MiB", heapUsed / (1024 * 1024)));
        int cores = Runtime.getRuntime().availableProcessors();
        double serviceCpu = seconds(after.service, before.service);
        long[] pgAfter = new long[2];
        long[] pgBefore = new long[2];
        after.postgres.forEach((pid, t) -> {
            // processes that ended during the run are missed; ones that started in it count in full
            long[] b = before.postgres.getOrDefault(pid, new long[2]);
            pgAfter[0] += t[0];
            pgAfter[1] += t[1];
            pgBefore[0] += b[0];
            pgBefore[1] += b[1];
        });
        double postgresCpu = seconds(pgAfter, pgBefore);
        double selfCpu = seconds(after.self, before.self);
        double ticks = after.totalTicks - before.totalTicks;
        double machineCpu = (after.busyTicks - before.busyTicks) / ticks * cores * wall;
        double iowait = (after.iowaitTicks - before.iowaitTicks) / ticks * cores * wall;
        long n = Math.max(1, run.completed);
        rows.add(row("CPU, service JVM", "%.0f%% of one core (%.0f%% of it in the kernel), %.2f ms per request",
                100 * serviceCpu / wall, kernelShare(after.service, before.service), 1000 * serviceCpu / n));
        rows.add(row("busiest service threads", "%s", busiestThreads(before, after, wall)));
        double batches = sumOf(metricsAfter, "herald_devices_registration_batch_count", "")
                - sumOf(metricsBefore, "herald_devices_registration_batch_count", "");
        if (batches > 0) {
            double batched = sumOf(metricsAfter, "herald_devices_registration_batch_sum", "")
                    - sumOf(metricsBefore, "herald_devices_registration_batch_sum", "");
            rows.add(row("registrations per database transaction", "%.1f on average (%,.0f transactions)",
                    batched / batches, batches));
            double batchSeconds = sumOf(metricsAfter, "herald_devices_registration_batch_time_seconds_sum", "")
                    - sumOf(metricsBefore, "herald_devices_registration_batch_time_seconds_sum", "");
            rows.add(row("time per database transaction", "%.2f ms on average, p99 %.2f ms (last minute)",
                    1000 * batchSeconds / batches,
                    1000 * maxOf(metricsAfter, "herald_devices_registration_batch_time_seconds{quantile=\"0.99\"")));
        }
        double gcPauses = sumOf(metricsAfter, "jvm_gc_pause_seconds_count{", "")
                - sumOf(metricsBefore, "jvm_gc_pause_seconds_count{", "");
        double gcSeconds = sumOf(metricsAfter, "jvm_gc_pause_seconds_sum{", "")
                - sumOf(metricsBefore, "jvm_gc_pause_seconds_sum{", "");
        rows.add(row("service GC pauses", "%.0f, %.0f ms in all, the longest %.0f ms", gcPauses, gcSeconds * 1000,
                maxOf(metricsAfter, "jvm_gc_pause_seconds_max{") * 1000));
        rows.add(row("PostgreSQL: autovacuum / autoanalyze / checkpoints", "%d / %d / %d", pgDuring[0], pgDuring[1],
                pgDuring[2]));
        rows.add(row("CPU, PostgreSQL (all its processes)",
                "%.0f%% of one core (%.0f%% of it in the kernel), %.2f ms per request",
                100 * postgresCpu / wall, kernelShare(pgAfter, pgBefore), 1000 * postgresCpu / n));
        rows.add(row("CPU, load generator", "%.0f%% of one core (%.0f%% of it in the kernel), %.2f ms per request",
                100 * selfCpu / wall, kernelShare(after.self, before.self), 1000 * selfCpu / n));
        rows.add(row("CPU, anything else on the machine", "%.0f%% of one core",
                100 * Math.max(0, machineCpu - serviceCpu - postgresCpu - selfCpu) / wall));
        rows.add(row("CPU, whole machine busy (iowait)", "%.0f%% of %d cores (%.0f%%)", 100 * machineCpu / wall, cores,
                100 * iowait / wall));
        rows.add(row("target (>= 5,000 req/s, p99 < 20 ms, no errors)", met ? "met" : "NOT met"));

        int w0 = rows.stream().mapToInt(r -> r[0].length()).max().orElse(10);
        int w1 = rows.stream().mapToInt(r -> r[1].length()).max().orElse(10);
        StringBuilder out = new StringBuilder();
        out.append("| ").append(pad("metric", w0)).append(" | ").append(pad("value", w1)).append(" |\n");
        out.append("|").append("-".repeat(w0 + 2)).append("|").append("-".repeat(w1 + 2)).append("|\n");
        for (String[] r : rows) {
            out.append("| ").append(pad(r[0], w0)).append(" | ").append(pad(r[1], w1)).append(" |\n");
        }
        return out.toString();
    }

    private String markdown(String table) {
        return "# Device registration benchmark\n\n"
                + "`PUT /v1/devices/{installationId}` through the HTTP API of `java -Xmx512m -jar target/herald.jar`"
                + " (embedded PostgreSQL and Redis), half new installations, half re-registrations of seeded ones"
                + " (" + Math.round(refreshRatio * 100) + "% of those with a refreshed token), "
                + concurrency + " requests in flight on keep-alive connections. Method: `dev.herald.bench."
                + "DeviceRegistrationBench`; run with `./mvnw -B -Pbench verify`.\n\n"
                + "Run at " + Instant.now() + " on " + Runtime.getRuntime().availableProcessors() + " cores, "
                + System.getProperty("java.vm.name") + " " + System.getProperty("java.version") + ".\n\n"
                + table;
    }

    private static double seconds(long[] after, long[] before) {
        return (after[0] + after[1] - before[0] - before[1]) / 100.0;
    }

    private static double kernelShare(long[] after, long[] before) {
        long all = after[0] + after[1] - before[0] - before[1];
        return all == 0 ? 0 : 100.0 * (after[1] - before[1]) / all;
    }

    private static String[] row(String name, String format, Object... args) {
        return new String[] {name, String.format(Locale.ROOT, format, args)};
    }

    private static String pad(String s, int width) {
        return s + " ".repeat(Math.max(0, width - s.length()));
    }

    /**
     * CPU ticks (user and system, 1/100 s) used so far by the service JVM, PostgreSQL (the postmaster and its
     * children) and this process, and the machine's busy, iowait and total ticks (over all cores).
     */
    private record CpuSample(long wallNanos, long[] service, Map<Long, ThreadTicks> serviceThreads,
                             Map<Long, long[]> postgres, long[] self, long busyTicks, long iowaitTicks, long totalTicks) {
    }

    /** A thread's name (as the kernel keeps it: 15 characters) and its CPU ticks. */
    private record ThreadTicks(String name, long ticks) {
    }

    private CpuSample cpuSample(Path pgData) throws IOException {
        long wall = System.nanoTime();
        long[] serviceCpu = ticks(service.pid());
        Map<Long, ThreadTicks> threads = new HashMap<>();
        try (Stream<Path> tasks = Files.list(Paths.get("/proc/" + service.pid() + "/task"))) {
            for (Path task : tasks.toList()) {
                try {
                    String stat = Files.readString(task.resolve("stat"));
                    String name = stat.substring(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
                    long[] t = ticks(stat);
                    threads.put(Long.parseLong(task.getFileName().toString()), new ThreadTicks(name, t[0] + t[1]));
                } catch (IOException | RuntimeException gone) {
                    // the thread ended meanwhile
                }
            }
        }
        long postmaster = Long.parseLong(Files.readAllLines(pgData.resolve("postmaster.pid")).get(0).trim());
        Map<Long, long[]> pgCpu = new HashMap<>();
        pgCpu.put(postmaster, ticks(postmaster));
        for (long child : ProcessHandle.allProcesses()
                .filter(p -> p.parent().map(pp -> pp.pid() == postmaster).orElse(false))
                .mapToLong(ProcessHandle::pid).toArray()) {
            pgCpu.put(child, ticks(child));
        }
        long[] self = ticks(ProcessHandle.current().pid());
        String[] cpu = Files.readAllLines(Paths.get("/proc/stat")).get(0).trim().split("\\s+");
        long total = 0;
        for (int k = 1; k < cpu.length && k <= 8; k++) {
            total += Long.parseLong(cpu[k]);
        }
        long idle = Long.parseLong(cpu[4]);
        long iowait = Long.parseLong(cpu[5]);
        return new CpuSample(wall, serviceCpu, threads, pgCpu, self, total - idle - iowait, iowait, total);
    }

    /** {utime, stime} of a process from /proc/<pid>/stat, in clock ticks (USER_HZ, 100 on Linux); zeros if it is gone. */
    private static long[] ticks(long pid) {
        try {
            return ticks(Files.readString(Paths.get("/proc/" + pid + "/stat")));
        } catch (IOException | RuntimeException gone) {
            return new long[] {0, 0};
        }
    }

    private static long[] ticks(String stat) {
        String[] f = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
        return new long[] {Long.parseLong(f[11]), Long.parseLong(f[12])};
    }

    /** The service's thread groups (names without their number) that used the most CPU, in % of one core. */
    private static String busiestThreads(CpuSample before, CpuSample after, double wallSeconds) {
        Map<String, Long> byGroup = new HashMap<>();
        after.serviceThreads.forEach((tid, t) -> {
            ThreadTicks b = before.serviceThreads.get(tid);
            long used = t.ticks - (b == null ? 0 : b.ticks);
            byGroup.merge(t.name.replaceAll("[-#]?\\d+$", ""), used, Long::sum);
        });
        return byGroup.entrySet().stream()
                .sorted(Map.Entry.<String, Long>comparingByValue().reversed())
                .limit(4)
                .map(e -> String.format(Locale.ROOT, "%s %.0f%%", e.getKey(), e.getValue() / wallSeconds))
                .reduce((a, b) -> a + ", " + b).orElse("?");
    }

    private static long rssKb(long pid) throws IOException {
        for (String line : Files.readAllLines(Paths.get("/proc/" + pid + "/status"))) {
            if (line.startsWith("VmRSS:")) {
                return Long.parseLong(line.replaceAll("[^0-9]", ""));
            }
        }
        return -1;
    }

    /** {autovacuums and autoanalyzes of devices, checkpoints} so far, to tell what ran inside the measurement. */
    private static long[] postgresActivity(String jdbcUrl) throws SQLException {
        try (Connection c = DriverManager.getConnection(jdbcUrl, "postgres", ""); Statement s = c.createStatement()) {
            String checkpoints = c.getMetaData().getDatabaseMajorVersion() >= 17
                    ? "SELECT num_timed + num_requested FROM pg_stat_checkpointer"
                    : "SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter";
            try (java.sql.ResultSet rs = s.executeQuery("""
                    SELECT (SELECT autovacuum_count FROM pg_stat_user_tables WHERE relname = 'devices'),
                           (SELECT autoanalyze_count FROM pg_stat_user_tables WHERE relname = 'devices'),
                           (%s)""".formatted(checkpoints))) {
                rs.next();
                return new long[] {rs.getLong(1), rs.getLong(2), rs.getLong(3)};
            }
        }
    }

    /** The service's {@code GET /metrics} (Prometheus text format). */
    private String metricsText() throws IOException, InterruptedException {
        return expect(setupClient.send(HttpRequest.newBuilder(base.resolve("/metrics")).build(),
                HttpResponse.BodyHandlers.ofString()), 200, "GET /metrics").body();
    }

    /** The largest sample whose line starts with {@code prefix} (e.g. a rolling maximum such as GC pauses). */
    private static double maxOf(String prometheusText, String prefix) {
        double max = 0;
        for (String line : prometheusText.split("\n")) {
            if (line.startsWith(prefix)) {
                max = Math.max(max, Double.parseDouble(line.substring(line.lastIndexOf(' ') + 1)));
            }
        }
        return max;
    }

    /** The sum of the samples whose line starts with {@code prefix} and contains {@code label} (e.g. heap used). */
    private static double sumOf(String prometheusText, String prefix, String label) {
        double sum = 0;
        for (String line : prometheusText.split("\n")) {
            if (line.startsWith(prefix) && line.contains(label)) {
                sum += Double.parseDouble(line.substring(line.lastIndexOf(' ') + 1));
            }
        }
        return sum;
    }

    // ---------------------------------------------------------------- helpers

    private static int freePort() throws IOException {
        try (ServerSocket socket = new ServerSocket(0)) {
            return socket.getLocalPort();
        }
    }

    private static void deleteRecursively(Path dir) throws IOException {
        if (!Files.exists(dir)) {
            return;
        }
        try (Stream<Path> paths = Files.walk(dir)) {
            for (Path p : paths.sorted(Comparator.reverseOrder()).toList()) {
                Files.delete(p);
            }
        } catch (UncheckedIOException e) {
            throw e.getCause();
        }
    }

    private static void log(String format, Object... args) {
        System.out.printf(Locale.ROOT, "[bench] " + format + "%n", args);
    }
}
