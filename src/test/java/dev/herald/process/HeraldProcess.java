package dev.herald.process;

import dev.herald.embedded.EmbeddedServers;
import dev.herald.support.Api;
import dev.herald.support.Fixtures;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.ServerSocket;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.awaitility.Awaitility.await;

/** Herald as an operator runs it: {@code java -jar target/herald.jar} in its own process. */
final class HeraldProcess implements AutoCloseable {

    private final Process process;
    private final int port;
    private final Path log;

    private HeraldProcess(Process process, int port, Path log) {
        this.process = process;
        this.port = port;
        this.log = log;
    }

    /**
     * The environment of nodes sharing one PostgreSQL and one Redis, both embedded servers started (or
     * found running) under {@code target/it-data/<name>}.
     */
    static Map<String, String> sharedEnvironment(String name) {
        Path shared = Path.of(System.getProperty("herald.data-dir", "target/it-data")).resolve(name);
        EmbeddedServers.PostgresEndpoint postgres = EmbeddedServers.postgres(shared);
        String redis = EmbeddedServers.redis(shared);
        return Map.of(
                "DATABASE_URL", postgres.jdbcUrl(), "DATABASE_USER", postgres.user(),
                "DATABASE_PASSWORD", postgres.password(), "REDIS_URI", redis,
                "HERALD_ADMIN_KEY", Fixtures.ADMIN_KEY, "HERALD_MASTER_KEY", MASTER_KEY,
                "HERALD_DATA_DIR", shared.resolve("unused").toString());
    }

    /** The master key of the test deployments with an external database (32 bytes, base64). */
    static final String MASTER_KEY = "aGVyYWxkLXRlc3QtbWFzdGVyLWtleS0zMi1ieXRlcyE=";

    static HeraldProcess start(String name, Map<String, String> environment) {
        try {
            int port = freePort();
            Path jar = Path.of(System.getProperty("herald.jar", "target/herald.jar"));
            Path log = Path.of("target", "it-" + name + "-" + System.nanoTime() + ".log");
            List<String> command = new ArrayList<>(List.of(
                    Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                    "-Xmx256m", "-XX:+UseSerialGC", "-jar", jar.toString()));
            ProcessBuilder builder = new ProcessBuilder(command).redirectErrorStream(true)
                    .redirectOutput(log.toFile());
            builder.environment().remove("DATABASE_URL");
            builder.environment().remove("REDIS_URI");
            // bursts from one key and one user: the rate limits are RateLimitTest's subject, not these tests'
            builder.environment().put("HERALD_LIMITS_KEY_PER_SECOND", "1000000");
            builder.environment().put("HERALD_LIMITS_KEY_BURST", "1000000");
            builder.environment().put("HERALD_LIMITS_USER_PER_SECOND", "1000000");
            builder.environment().put("HERALD_LIMITS_USER_BURST", "1000000");
            builder.environment().put("HERALD_LIMITS_DEVICE_PER_MINUTE", "1000000");
            builder.environment().putAll(environment);
            builder.environment().put("PORT", Integer.toString(port));
            return new HeraldProcess(builder.start(), port, log);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    Api api() {
        return new Api(URI.create(baseUrl() + "/"));
    }

    /** {@code http://127.0.0.1:<port>}, without a trailing slash. */
    String baseUrl() {
        return "http://127.0.0.1:" + port;
    }

    /** Waits until {@code GET /health} answers 200; answers how long that took from now. */
    Duration awaitHealthy(Duration atMost) {
        long started = System.nanoTime();
        Api api = api();
        await().atMost(atMost).pollInterval(Duration.ofMillis(100)).ignoreExceptions().until(() -> {
            if (!process.isAlive()) {
                throw new AssertionError("Herald exited with " + process.exitValue() + ":\n" + log());
            }
            return api.get("/health", null).status() == 200;
        });
        return Duration.ofNanos(System.nanoTime() - started);
    }

    /** {@code kill -9}: no shutdown hook runs. */
    void kill() throws InterruptedException {
        process.destroyForcibly();
        process.waitFor();
    }

    String log() {
        try {
            return Files.exists(log) ? Files.readString(log) : "";
        } catch (IOException e) {
            return "(log unreadable: " + e + ")";
        }
    }

    @Override
    public void close() throws InterruptedException {
        process.destroy();
        if (!process.waitFor(20, java.util.concurrent.TimeUnit.SECONDS)) {
            process.destroyForcibly().waitFor();
        }
    }

    /** Deletes a data folder left by an earlier run, if any. */
    static void deleteRecursively(Path dir) throws IOException {
        if (!Files.exists(dir)) {
            return;
        }
        try (java.util.stream.Stream<Path> paths = Files.walk(dir)) {
            for (Path path : paths.sorted(java.util.Comparator.reverseOrder()).toList()) {
                Files.delete(path);
            }
        }
    }

    /**
     * A free port below the kernel's ephemeral range (32768 and up), so that the embedded PostgreSQL
     * and Redis the process starts, which take ephemeral ports, cannot take it before Herald binds it.
     */
    private static int freePort() throws IOException {
        java.util.Random random = new java.util.Random();
        for (int attempt = 0; attempt < 100; attempt++) {
            int candidate = 20_000 + random.nextInt(10_000);
            try (ServerSocket socket = new ServerSocket(candidate)) {
                return socket.getLocalPort();
            } catch (IOException taken) {
                // try another
            }
        }
        throw new IOException("no free port between 20000 and 30000");
    }
}
