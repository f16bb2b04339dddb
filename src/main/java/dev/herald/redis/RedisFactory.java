package dev.herald.redis;

import dev.herald.embedded.EmbeddedServers;
import io.lettuce.core.RedisClient;
import io.lettuce.core.RedisURI;
import io.lettuce.core.api.StatefulRedisConnection;
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

/**
 * The lettuce client and its shared connection: {@code REDIS_URI} when set, else an embedded Redis
 * under the data folder. One line in the startup log says which.
 */
@Factory
class RedisFactory {

    private static final Logger LOG = LoggerFactory.getLogger(RedisFactory.class);

    @Singleton
    @Bean(preDestroy = "shutdown")
    ClientResources redisResources() {
        return DefaultClientResources.create();
    }

    @Singleton
    @Bean(preDestroy = "shutdown")
    RedisClient redisClient(ClientResources resources, @Value("${herald.redis-uri:}") String configured,
                            @Value("${herald.data-dir}") String dataDir) {
        RedisURI uri;
        if (configured == null || configured.isBlank()) {
            uri = RedisURI.create(EmbeddedServers.redis(Path.of(dataDir)));
        } else {
            uri = RedisURI.create(configured);
            LOG.info("Redis: external, {}:{}", uri.getHost(), uri.getPort());
        }
        uri.setTimeout(Duration.ofSeconds(2));
        return RedisClient.create(resources, uri);
    }

    /**
     * Shared by all callers: lettuce connections are thread-safe and pipeline concurrent commands.
     * Made at startup, so that the embedded Redis never starts on a request thread.
     */
    @Context
    @Bean(preDestroy = "close")
    StatefulRedisConnection<String, String> redisConnection(RedisClient client) {
        return client.connect();
    }
}
