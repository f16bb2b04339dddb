package dev.herald.redis;

import dev.herald.embedded.EmbeddedServers;
import io.lettuce.core.RedisClient;
import io.lettuce.core.RedisURI;
import io.lettuce.core.cluster.ClusterClientOptions;
import io.lettuce.core.cluster.ClusterTopologyRefreshOptions;
import io.lettuce.core.cluster.RedisClusterClient;
import io.lettuce.core.resource.ClientResources;
import io.lettuce.core.resource.DefaultClientResources;
import io.micronaut.context.annotation.Bean;
import io.micronaut.context.annotation.Context;
import io.micronaut.context.annotation.Factory;
import io.micronaut.context.annotation.Value;
import jakarta.inject.Singleton;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

/**
 * Herald's {@link Redis}: {@code REDIS_URI} when set, else an embedded Redis under the data folder. One
 * line in the startup log says which. {@code redis://} and {@code rediss://} name one server,
 * {@code redis-sentinel://} a Sentinel-managed primary, and {@code redis-cluster://host:port,host:port}
 * (with {@code rediss-cluster://} for TLS) the seed nodes of a Redis Cluster.
 */
@Factory
class RedisFactory {

    private static final Logger LOG = LoggerFactory.getLogger(RedisFactory.class);
    static final Duration TIMEOUT = Duration.ofSeconds(2);

    @Singleton
    @Bean(preDestroy = "shutdown")
    ClientResources redisResources() {
        // after an outage, reconnect within a second of Redis' return (lettuce's default backs off to 30 s)
        return DefaultClientResources.builder()
                .reconnectDelay(io.lettuce.core.resource.Delay.exponential(Duration.ofMillis(50), Duration.ofSeconds(1),
                        2, java.util.concurrent.TimeUnit.MILLISECONDS))
                .build();
    }

    /** Made at startup, so that the embedded Redis never starts on a request thread. */
    @Context
    @Bean(preDestroy = "close")
    Redis redis(ClientResources resources, @Value("${herald.redis-uri:}") String configured,
                @Value("${herald.data-dir}") String dataDir) {
        if (configured == null || configured.isBlank()) {
            RedisURI uri = RedisURI.create(EmbeddedServers.redis(Path.of(dataDir)));
            uri.setTimeout(TIMEOUT);
            return new Redis(RedisClient.create(resources, uri));
        }
        if (configured.startsWith("redis-cluster://") || configured.startsWith("rediss-cluster://")) {
            List<RedisURI> seeds = clusterSeeds(configured);
            LOG.info("Redis: external cluster, seeds {}", seeds.stream().map(u -> u.getHost() + ":" + u.getPort()).toList());
            RedisClusterClient client = RedisClusterClient.create(resources, seeds);
            // follow failovers and resharding: MOVED/ASK answers and periodic topology refresh
            client.setOptions(ClusterClientOptions.builder().topologyRefreshOptions(ClusterTopologyRefreshOptions.builder()
                    .enablePeriodicRefresh(Duration.ofSeconds(30)).enableAllAdaptiveRefreshTriggers().build()).build());
            return new Redis(client);
        }
        RedisURI uri = RedisURI.create(configured);
        uri.setTimeout(TIMEOUT);
        LOG.info("Redis: external, {}", uri.getSentinels().isEmpty() ? uri.getHost() + ":" + uri.getPort()
                : "sentinel master " + uri.getSentinelMasterId());
        return new Redis(RedisClient.create(resources, uri));
    }

    /** {@code redis-cluster://[user:password@]h1:p1,h2:p2}: one URI per seed, each with the credentials. */
    static List<RedisURI> clusterSeeds(String configured) {
        boolean tls = configured.startsWith("rediss-");
        String rest = configured.substring(configured.indexOf("://") + 3);
        String credentials = "";
        int at = rest.lastIndexOf('@');
        if (at >= 0) {
            credentials = rest.substring(0, at + 1);
            rest = rest.substring(at + 1);
        }
        int slash = rest.indexOf('/');
        if (slash >= 0) {
            rest = rest.substring(0, slash);
        }
        List<RedisURI> seeds = new ArrayList<>();
        for (String host : rest.split(",")) {
            if (!host.isBlank()) {
                RedisURI uri = RedisURI.create((tls ? "rediss://" : "redis://") + credentials + host.trim());
                uri.setTimeout(TIMEOUT);
                seeds.add(uri);
            }
        }
        if (seeds.isEmpty()) {
            throw new IllegalArgumentException("REDIS_URI names no cluster node: use redis-cluster://host:port,host:port");
        }
        return seeds;
    }
}
