package dev.herald.devices;

import dev.herald.support.Fixtures;
import dev.herald.support.HeraldTest;
import dev.herald.support.Sql;
import io.micronaut.test.extensions.junit5.annotation.MicronautTest;
import jakarta.inject.Inject;
import org.junit.jupiter.api.Test;

import java.sql.Timestamp;
import java.time.Instant;
import java.time.temporal.ChronoUnit;

import static dev.herald.support.Problems.assertProblem;
import static org.assertj.core.api.Assertions.assertThat;

@MicronautTest(transactional = false)
class SilentDeviceCleanupTest extends HeraldTest {

    @Inject
    Sql sql;
    @Inject
    SilentDeviceCleanup cleanup;

    @Test
    void dropsDevicesSilentFor270DaysAndKeepsTheRest() {
        Fixtures.Tenant tenant = fixtures.tenant();
        String stale = Fixtures.unique("stale");
        String recent = Fixtures.unique("recent");
        api.put("/v1/devices/" + stale, tenant.userToken(), Fixtures.androidDevice(tenant.app(), Fixtures.fcmToken()));
        api.put("/v1/devices/" + recent, tenant.userToken(), Fixtures.androidDevice(tenant.app(), Fixtures.fcmToken()));
        setLastSeen(stale, Instant.now().minus(271, ChronoUnit.DAYS));
        setLastSeen(recent, Instant.now().minus(269, ChronoUnit.DAYS));

        assertThat(cleanup.run()).isGreaterThanOrEqualTo(1);

        assertProblem(api.get("/v1/devices/" + stale, tenant.userToken()), 404);
        assertThat(api.get("/v1/devices/" + recent, tenant.userToken()).status()).isEqualTo(200);
    }

    private void setLastSeen(String installationId, Instant when) {
        assertThat(sql.update("UPDATE devices SET last_seen_at = ? WHERE installation_id = ?",
                Timestamp.from(when), installationId)).isEqualTo(1);
    }
}
