package dev.herald.delivery;

import dev.herald.notifications.NotificationStore;
import dev.herald.notifications.StoredNotification;
import dev.herald.support.Api;
import dev.herald.support.GatewayTest;
import dev.herald.support.MockApns;
import dev.herald.support.Sql;
import io.micronaut.test.extensions.junit5.annotation.MicronautTest;
import io.micronaut.transaction.TransactionOperations;
import jakarta.inject.Inject;
import org.junit.jupiter.api.Test;

import java.sql.Connection;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

import static dev.herald.support.Fixtures.apnsToken;
import static dev.herald.support.Fixtures.iosDevice;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/**
 * A node stopping in the middle of a fan-out: the pushes it has in flight are written once their
 * outcomes come, and the job is handed on at once, from there, to whichever node runs next (here this
 * test's own router, standing in for another node). Every device gets its push exactly once, and
 * nobody waits for the job's lease to end.
 */
@MicronautTest(transactional = false)
class FanOutStopTest extends GatewayTest {

    @Inject
    Sql sql;
    @Inject
    DeliveryStore store;
    @Inject
    NotificationStore notifications;
    @Inject
    PushWorker pushes;
    @Inject
    TransactionOperations<Connection> transactions;
    @Inject
    Clock clock;

    @Test
    void aNodeStoppingWritesWhatIsInFlightAndHandsTheJobOnAtOnce() throws Exception {
        String tag = "stop-" + apnsToken().substring(0, 8);
        List<String> tokens = new ArrayList<>();
        for (int i = 0; i < 30; i++) {
            String token = apnsToken();
            Map<String, Object> device = iosDevice(tenant.app(), token);
            device.put("tags", List.of(tag));
            assertThat(api.put("/v1/devices/" + tag + "-" + (100 + i), tenant.userToken(), device).status()).isEqualTo(201);
            tokens.add(token);
        }
        // scheduled for later, so that no router takes its job before the node under test does
        Api.Response accepted = api.post("/v1/notifications", tenant.key(), Map.of("to", Map.of("tags", List.of(tag)),
                "title", "Stopping", "sendAt", Instant.now().plusSeconds(3600).toString()));
        assertThat(accepted.status()).isEqualTo(202);
        String id = accepted.json().path("id").asText();
        assertThat(sql.update("UPDATE notifications SET status = 'routing' WHERE id = ?", id)).isEqualTo(1);
        long jobId = sql.count("SELECT id FROM jobs WHERE notification_id = ?", id);
        StoredNotification notification = notifications.find(tenant.app(), id).orElseThrow();

        MockApns.Gate held = apns.hold();
        AtomicBoolean running = new AtomicBoolean(true);
        // chunks of 4, at most three out at once (the mock holds what reaches it: the rest wait in pushy)
        FanOut node = new FanOut(new DeliveryStore.Job(jobId, id, "", 0), notification, store, notifications, pushes,
                transactions, clock, Duration.ofMinutes(1), 4, 4, running::get, () -> { });
        List<Thread> writers = new java.util.concurrent.CopyOnWriteArrayList<>();
        Thread thread = new Thread(() -> node.run(writers::add), "node-under-test");
        thread.start();
        long stoppedAt;
        try {
            await().atMost(Duration.ofSeconds(10)).until(() -> held.waiting() >= 1);
            stoppedAt = System.nanoTime();
            running.set(false);
        } finally {
            held.open();
        }
        thread.join(TimeUnit.SECONDS.toMillis(10));
        assertThat(thread.isAlive()).isFalse();
        assertThat(writers).hasSize(1);
        writers.get(0).join(TimeUnit.SECONDS.toMillis(10));
        assertThat(writers.get(0).isAlive()).as("the writer hands the job on within seconds").isFalse();

        await().atMost(Duration.ofSeconds(20)).until(() -> "done".equals(
                api.get("/v1/notifications/" + id, tenant.key()).json().path("status").asText()));
        assertThat(TimeUnit.NANOSECONDS.toSeconds(System.nanoTime() - stoppedAt)).as("no wait for the job's lease")
                .isLessThan(30);
        // the first twelve were written by the node that stopped: sent again, they would arrive twice
        for (int i = 0; i < tokens.size(); i++) {
            assertThat(apns.receivedFor(tokens.get(i))).as("device " + i).hasSize(1);
        }
        assertThat(api.get("/v1/notifications/" + id, tenant.key()).json().path("counts").path("sent").asInt())
                .isEqualTo(30);
    }
}
