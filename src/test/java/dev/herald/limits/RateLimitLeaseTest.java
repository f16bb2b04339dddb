package dev.herald.limits;

import dev.herald.support.HeraldTest;
import io.micronaut.context.annotation.Property;
import io.micronaut.test.extensions.junit5.annotation.MicronautTest;
import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * With a limit high enough that a node leases tokens several at a time, what gets through still keeps
 * to the bucket: its burst plus what it refilled while the requests ran, plus at most one lease.
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
}
