package dev.herald.redis;

import io.lettuce.core.RedisClient;
import io.lettuce.core.api.StatefulConnection;
import io.lettuce.core.cluster.RedisClusterClient;
import io.lettuce.core.cluster.api.async.RedisClusterAsyncCommands;
import io.lettuce.core.cluster.api.sync.RedisClusterCommands;
import io.lettuce.core.pubsub.StatefulRedisPubSubConnection;

/**
 * Herald's Redis, a single server (or Sentinel-managed primary) or a Redis Cluster, behind the commands
 * both have in common. One shared connection (lettuce connections are thread-safe and pipeline concurrent
 * commands); dedicated connections for work that blocks (the queue intake's reads) or subscribes (live
 * hand-off). On a Cluster every command names one key, and every per-user key carries its hash tag, so
 * nothing Herald sends crosses slots; pub/sub messages are broadcast by the cluster to every node.
 */
public final class Redis implements AutoCloseable {

    /** A connection of its own, and its synchronous commands. */
    public record Dedicated(StatefulConnection<String, String> connection, RedisClusterCommands<String, String> sync)
            implements AutoCloseable {
        public boolean isOpen() {
            return connection.isOpen();
        }

        @Override
        public void close() {
            connection.close();
        }
    }

    private final RedisClient single;
    private final RedisClusterClient cluster;
    private final StatefulConnection<String, String> shared;
    private final RedisClusterAsyncCommands<String, String> async;

    Redis(RedisClient single) {
        this.single = single;
        this.cluster = null;
        var connection = single.connect();
        this.shared = connection;
        this.async = connection.async();
    }

    Redis(RedisClusterClient cluster) {
        this.single = null;
        this.cluster = cluster;
        var connection = cluster.connect();
        this.shared = connection;
        this.async = connection.async();
    }

    /** The shared connection's asynchronous commands. */
    public RedisClusterAsyncCommands<String, String> async() {
        return async;
    }

    public boolean isCluster() {
        return cluster != null;
    }

    /** A new connection for one user's exclusive use; the caller closes it. */
    public Dedicated connect() {
        if (cluster != null) {
            var c = cluster.connect();
            return new Dedicated(c, c.sync());
        }
        var c = single.connect();
        return new Dedicated(c, c.sync());
    }

    /**
     * A connection of its own whose commands go out only at {@code flushCommands()}: a batch of commands
     * in one write, read by Redis in one go, rather than a write and a read per command. One batch at a
     * time; the caller closes it.
     */
    public record Pipelined(StatefulConnection<String, String> connection, RedisClusterAsyncCommands<String, String> async)
            implements AutoCloseable {
        public void flush() {
            connection.flushCommands();
        }

        @Override
        public void close() {
            connection.close();
        }
    }

    /**
     * A new {@link Pipelined} connection; the caller closes it. On a Cluster its commands go out as they
     * come (lettuce opens a node's connection on its first command, and a command queued for one not yet
     * open would wait for the next flush; redirected commands too).
     */
    public Pipelined connectPipelined() {
        if (cluster != null) {
            var c = cluster.connect();
            return new Pipelined(c, c.async());
        }
        var c = single.connect();
        c.setAutoFlushCommands(false);
        return new Pipelined(c, c.async());
    }

    /** A new publish/subscribe connection; the caller closes it. */
    public StatefulRedisPubSubConnection<String, String> connectPubSub() {
        return cluster != null ? cluster.connectPubSub() : single.connectPubSub();
    }

    /** Closes the shared connection and shuts the client down (its dedicated connections, topology refresh). */
    @Override
    public void close() {
        shared.close();
        if (cluster != null) {
            cluster.shutdown();
        } else {
            single.shutdown();
        }
    }
}
