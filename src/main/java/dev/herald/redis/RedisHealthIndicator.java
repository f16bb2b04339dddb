package dev.herald.redis;

import io.micronaut.health.HealthStatus;
import io.micronaut.management.health.indicator.HealthIndicator;
import io.micronaut.management.health.indicator.HealthResult;
import io.micronaut.management.health.indicator.annotation.Readiness;
import jakarta.inject.Singleton;
import org.reactivestreams.Publisher;
import reactor.core.publisher.Mono;

import java.time.Duration;

/** Readiness only: a node without Redis should get no new traffic, but is not restarted for it. */
@Singleton
@Readiness
class RedisHealthIndicator implements HealthIndicator {

    private final Redis redis;

    RedisHealthIndicator(Redis redis) {
        this.redis = redis;
    }

    @Override
    public Publisher<HealthResult> getResult() {
        return Mono.fromCompletionStage(redis.async().ping())
                .timeout(Duration.ofSeconds(2))
                .map(pong -> HealthResult.builder("redis", HealthStatus.UP).build())
                .onErrorResume(e -> Mono.just(HealthResult.builder("redis", HealthStatus.DOWN).build()));
    }
}
