package dev.herald.devices;

import dev.herald.support.Api;
import dev.herald.support.Fixtures;
import dev.herald.support.HeraldTest;
import dev.herald.support.Sql;
import io.micronaut.test.extensions.junit5.annotation.MicronautTest;
import jakarta.inject.Inject;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * Registrations are stored in batches: many at once, including the same installation and the same
 * token claimed repeatedly in one burst, end exactly as if they had come one by one.
 */
@MicronautTest(transactional = false)
class ConcurrentRegistrationTest extends HeraldTest {

    @Inject
    Sql sql;

    @Inject
    DeviceStore store;

    /**
     * A batch's statements go to PostgreSQL together; they must still be one transaction: when its
     * upsert fails, the tokens its first statement took from other installations stay there. Repeated
     * from one thread, so the pool hands it the same connection again and the statements run both
     * before and after pgjdbc prepares them on the server (its fifth use), when it may send them apart.
     */
    @Test
    void aBatchWhoseUpsertFailsTakesNoTokenFromAnotherInstallation() {
        Fixtures.Tenant tenant = fixtures.tenant();
        for (int attempt = 0; attempt < 12; attempt++) {
            String token = Fixtures.apnsToken();
            String holder = "holder-" + attempt + "-" + tenant.app();
            assertThat(api.put("/v1/devices/" + holder, tenant.userToken(), Fixtures.iosDevice(tenant.app(), token))
                    .status()).isEqualTo(201);
            DeviceRegistration intoNoApp = new DeviceRegistration("no-such-app-" + tenant.app(), Platform.IOS, token,
                    null, null, null, null, null);
            String taker = "taker-" + attempt + "-" + tenant.app();

            assertThatThrownBy(() -> store.registerBatch(List.of(new DeviceStore.Registration(tenant.userId(), taker,
                    intoNoApp)))).as("the upsert breaks the app foreign key").isInstanceOf(RuntimeException.class);

            assertThat(sql.string("SELECT push_token FROM devices WHERE installation_id = ?", holder))
                    .as("attempt %d", attempt).isEqualTo(token);
            assertThat(sql.count("SELECT count(*) FROM devices WHERE installation_id = ?", taker)).isZero();
        }
    }

    @Test
    void aBurstOfRegistrationsIsStoredAndAnsweredOneByOne() throws Exception {
        Fixtures.Tenant tenant = fixtures.tenant();
        int installations = 200;
        ExecutorService pool = Executors.newFixedThreadPool(32);
        try {
            List<CompletableFuture<Api.Response>> answers = new ArrayList<>();
            for (int i = 0; i < installations; i++) {
                String id = "burst-" + i + "-" + tenant.app();
                Map<String, Object> body = Fixtures.androidDevice(tenant.app(), Fixtures.fcmToken());
                answers.add(CompletableFuture.supplyAsync(() -> api.put("/v1/devices/" + id, tenant.userToken(), body), pool));
            }
            for (CompletableFuture<Api.Response> answer : answers) {
                assertThat(answer.get().status()).as(answer.get().toString()).isEqualTo(201);
            }
        } finally {
            pool.shutdown();
        }
        assertThat(sql.count("SELECT count(*) FROM devices WHERE app_id = ?", tenant.app())).isEqualTo(installations);
    }

    @Test
    void oneTokenClaimedByManyInstallationsAtOnceEndsOnExactlyOne() throws Exception {
        Fixtures.Tenant tenant = fixtures.tenant();
        String token = Fixtures.apnsToken();
        ExecutorService pool = Executors.newFixedThreadPool(16);
        try {
            List<CompletableFuture<Api.Response>> answers = new ArrayList<>();
            for (int i = 0; i < 40; i++) {
                String id = "claim-" + i + "-" + tenant.app();
                answers.add(CompletableFuture.supplyAsync(
                        () -> api.put("/v1/devices/" + id, tenant.userToken(), Fixtures.iosDevice(tenant.app(), token)), pool));
            }
            for (CompletableFuture<Api.Response> answer : answers) {
                assertThat(answer.get().status()).as(answer.get().toString()).isEqualTo(201);
            }
        } finally {
            pool.shutdown();
        }
        assertThat(sql.count("SELECT count(*) FROM devices WHERE app_id = ?", tenant.app())).isEqualTo(40);
        assertThat(sql.count("SELECT count(*) FROM devices WHERE app_id = ? AND push_token = ?", tenant.app(), token))
                .isEqualTo(1);
    }

    @Test
    void theSameInstallationRegisteredManyTimesAtOnceKeepsOneRow() throws Exception {
        Fixtures.Tenant tenant = fixtures.tenant();
        String id = "repeat-" + tenant.app();
        ExecutorService pool = Executors.newFixedThreadPool(16);
        List<CompletableFuture<Api.Response>> answers = new ArrayList<>();
        try {
            for (int i = 0; i < 30; i++) {
                answers.add(CompletableFuture.supplyAsync(
                        () -> api.put("/v1/devices/" + id, tenant.userToken(), Fixtures.androidDevice(tenant.app(), Fixtures.fcmToken())), pool));
            }
            long created = 0;
            for (CompletableFuture<Api.Response> answer : answers) {
                int status = answer.get().status();
                assertThat(status).isIn(200, 201);
                created += status == 201 ? 1 : 0;
            }
            assertThat(created).as("exactly one registration created the installation").isEqualTo(1);
        } finally {
            pool.shutdown();
        }
        assertThat(sql.count("SELECT count(*) FROM devices WHERE installation_id = ?", id)).isEqualTo(1);
    }
}
