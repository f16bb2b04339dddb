package dev.herald.support;

import io.lettuce.core.RedisClient;
import io.lettuce.core.api.StatefulRedisConnection;
import io.lettuce.core.api.sync.RedisCommands;
import redis.embedded.RedisServer;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

import static org.awaitility.Awaitility.await;

/**
 * A real Redis Cluster of three primaries on loopback, from the same redis-server binary as the
 * embedded default: each started with {@code cluster-enabled}, given a third of the 16,384 slots, and
 * introduced to the others; ready once every node says {@code cluster_state:ok}.
 */
public final class RedisCluster implements AutoCloseable {

    private final List<RedisServer> servers = new ArrayList<>();
    private final List<Integer> ports = new ArrayList<>();

    public RedisCluster(Path dir) {
        try {
            for (int i = 0; i < 3; i++) {
                int port = freePort();
                Path nodeDir = Files.createDirectories(dir.toAbsolutePath().resolve("node-" + i));
                RedisServer server = RedisServer.builder()
                        .port(port)
                        .bind("127.0.0.1")
                        .setting("dir " + nodeDir)
                        .setting("cluster-enabled yes")
                        .setting("cluster-config-file nodes.conf")
                        .setting("cluster-node-timeout 5000")
                        .setting("appendonly no")
                        .setting("save \"\"")
                        .build();
                server.start();
                servers.add(server);
                ports.add(port);
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        int[][] slots = {{0, 5460}, {5461, 10922}, {10923, 16383}};
        for (int i = 0; i < 3; i++) {
            try (var c = connect(i)) {
                c.sync().clusterAddSlotsRange(io.lettuce.core.Range.create(slots[i][0], slots[i][1]));
                if (i > 0) {
                    c.sync().clusterMeet("127.0.0.1", ports.get(0));
                }
            }
        }
        await().atMost(Duration.ofSeconds(30)).pollInterval(Duration.ofMillis(100)).until(() -> {
            for (int i = 0; i < 3; i++) {
                try (var c = connect(i)) {
                    if (!c.sync().clusterInfo().contains("cluster_state:ok")) {
                        return false;
                    }
                }
            }
            return true;
        });
    }

    private StatefulRedisConnection<String, String> connect(int node) {
        return RedisClient.create("redis://127.0.0.1:" + ports.get(node)).connect();
    }

    /** Commands on one node (not cluster-aware: for what a test asks a node itself). */
    public <T> T onNode(int node, java.util.function.Function<RedisCommands<String, String>, T> command) {
        try (var c = connect(node)) {
            return command.apply(c.sync());
        }
    }

    /** {@code redis-cluster://127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3}, as Herald's {@code REDIS_URI}. */
    public String uri() {
        return "redis-cluster://" + String.join(",", ports.stream().map(p -> "127.0.0.1:" + p).toList());
    }

    private static int freePort() throws IOException {
        try (ServerSocket socket = new ServerSocket(0)) {
            return socket.getLocalPort();
        }
    }

    @Override
    public void close() {
        servers.forEach(RedisServer::stop);
    }
}
