package dev.herald.limits;

import dev.herald.support.HeraldTest;
import io.micronaut.context.annotation.Property;
import io.micronaut.test.extensions.junit5.annotation.MicronautTest;
import jakarta.inject.Inject;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.concurrent.CompletableFuture;

import static org.awaitility.Awaitility.await;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * With a limit high enough that a node leases tokens several at a time, what gets through still keeps
 * to the bucket: its burst plus what it refilled while the requests ran, plus at most one lease. And a
 * steady stream does not wait for Redis: the next lease is asked for once half of one is spent.
 */
@MicronautTest(transactional = false)
@Property(name = "herald.limits.key-per-second", value = "50")
@Property(name = "herald.limits.key-burst", value = "100")
class RateLimitLeaseTest extends HeraldTest {

    @Test
    void leasedTokensDoNotLetMoreThroughThanTheBucketHolds() {
        String key = fixtures.key(fixtures.app(), "live", "send");
        long started = System.nanoTime();
        int through = 0;
        int limited = 0;
        for (int i = 0; i < 400; i++) {
            int status = api.get("/v1/notifications/ntf_00000000000000000000000000000000", key).status();
            if (status == 404) {
                through++;
            } else if (status == 429) {
                limited++;
            }
        }
        double seconds = (System.nanoTime() - started) / 1e9;
        assertThat(through + limited).isEqualTo(400);
        assertThat(through).as("the burst at least").isGreaterThanOrEqualTo(100);
        assertThat((double) through).as("burst + refill over %.1f s + one lease", seconds)
                .isLessThanOrEqualTo(100 + 50 * seconds + 5 + 1);
        assertThat(limited).isPositive();
    }

    @Inject
    RateLimiter limiter;

    @Test
    void theNextLeaseIsAskedForBeforeThisOneIsSpent() {
        String bucket = "lease-ahead-" + System.nanoTime();
        // 1,000 a second: leases of 50 tokens
        assertThat(limiter.take(bucket, 1_000, 100_000).toCompletableFuture().join().taken()).isTrue();
        assertThat(limiter.leased(bucket)).as("one lease, one token spent").isEqualTo(49);
        for (int i = 0; i < 24; i++) {
            CompletableFuture<RateLimiter.Decision> taken = limiter.take(bucket, 1_000, 100_000).toCompletableFuture();
            assertThat(taken).as("answered from the lease, at once").isCompletedWithValueMatching(RateLimiter.Decision::taken);
        }
        // half of the lease spent: the second lease comes while 25 tokens of the first are still in hand
        await().atMost(Duration.ofSeconds(10)).until(() -> limiter.leased(bucket) == 25 + 50);
        for (int i = 0; i < 70; i++) {
            CompletableFuture<RateLimiter.Decision> taken = limiter.take(bucket, 1_000, 100_000).toCompletableFuture();
            assertThat(taken).as("request %d: answered at once", i).isCompletedWithValueMatching(RateLimiter.Decision::taken);
        }
    }
}
