package dev.herald.notifications;

import dev.herald.support.Api;
import dev.herald.support.Fixtures;
import dev.herald.support.GatewayTest;
import dev.herald.support.Sql;
import io.lettuce.core.Consumer;
import io.lettuce.core.StreamMessage;
import io.lettuce.core.XReadArgs;
import io.lettuce.core.api.sync.RedisCommands;
import io.micronaut.test.extensions.junit5.annotation.MicronautTest;
import jakarta.inject.Inject;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import static dev.herald.support.Fixtures.apnsToken;
import static dev.herald.support.Fixtures.iosDevice;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/**
 * The Redis stream {@code herald:requests} end to end, against the real (embedded) Redis: an entry
 * becomes a delivered push and is acknowledged; entries that cannot be accepted land in
 * {@code herald:requests:dead} with their reason and nothing stays pending; entries a dead consumer
 * left pending are taken over.
 */
@MicronautTest(transactional = false)
class QueueIntakeTest extends GatewayTest {

    private static final Duration DEADLINE = Duration.ofSeconds(30);

    @Inject
    dev.herald.redis.Redis client;

    private dev.herald.redis.Redis.Dedicated connection;

    @Inject
    Sql sql;

    @Override
    protected Map<String, String> moreProperties() {
        return Map.of("herald.intake.claim-after", "2s", "herald.intake.block", "200ms");
    }

    private RedisCommands<String, String> redis() {
        if (connection == null) {
            connection = client.connect();
        }
        return (RedisCommands<String, String>) connection.sync();
    }

    private String iphone(String installationId) {
        String token = apnsToken();
        Api.Response r = api.put("/v1/devices/" + installationId, tenant.userToken(), iosDevice(tenant.app(), token));
        assertThat(r.status()).as(r.toString()).isIn(200, 201);
        return token;
    }

    private static String toDevice(String installationId, String title) {
        return "{\"to\":{\"devices\":[\"" + installationId + "\"]},\"title\":\"" + title + "\"}";
    }

    private Map<String, String> entry(String app, String key, String body) {
        Map<String, String> fields = new HashMap<>();
        fields.put("app", app);
        fields.put("key", key);
        fields.put("body", body);
        return fields;
    }

    private long pending() {
        return redis().xpending(QueueIntake.STREAM, QueueIntake.GROUP).getCount();
    }

    private List<StreamMessage<String, String>> deadOf(String app) {
        return redis().xrange(QueueIntake.DEAD, io.lettuce.core.Range.create("-", "+")).stream()
                .filter(m -> app.equals(m.getBody().get("app"))).toList();
    }

    @Test
    void anEntryBecomesADeliveredPushAndIsAcknowledged() {
        String token = iphone("iphone-q-" + tenant.userId());
        Map<String, String> fields = entry(tenant.app(), tenant.key(), toDevice("iphone-q-" + tenant.userId(), "From the queue"));
        fields.put("idempotencyKey", "order-42-" + tenant.userId());
        redis().xadd(QueueIntake.STREAM, fields);
        redis().xadd(QueueIntake.STREAM, fields);
        await().atMost(DEADLINE).until(() -> apns.receivedFor(token).size() == 1);
        assertThat(apns.receivedFor(token).get(0).payload()).contains("From the queue");
        await().atMost(DEADLINE).until(() -> pending() == 0);
        assertThat(sql.count("SELECT count(*) FROM notifications WHERE app_id = ?", tenant.app()))
                .as("the same idempotency key twice: one notification").isEqualTo(1L);
        assertThat(deadOf(tenant.app())).isEmpty();
    }

    @Test
    void entriesThatCannotBeAcceptedGoToTheDeadStreamWithTheirReason() {
        String installation = "iphone-dead-" + tenant.userId();
        iphone(installation);
        Api.Response created = api.post("/v1/apps/" + tenant.app() + "/keys", Fixtures.ADMIN_KEY,
                Map.of("name", "to revoke", "mode", "live", "scopes", List.of("send")));
        assertThat(created.status()).as(created.toString()).isEqualTo(201);
        String revoked = created.json().path("key").asText();
        assertThat(api.delete("/v1/apps/" + tenant.app() + "/keys/" + created.json().path("id").asText(),
                Fixtures.ADMIN_KEY).status()).isEqualTo(204);
        String noSend = fixtures.key(tenant.app(), "live", "calls");
        Fixtures.Tenant other = fixtures.tenant();

        Map<String, String> badJson = entry(tenant.app(), tenant.key(), "{\"to\":");
        badJson.put("idempotencyKey", "bad-json-1");
        redis().xadd(QueueIntake.STREAM, badJson);
        redis().xadd(QueueIntake.STREAM, entry(tenant.app(), tenant.key(), "{\"to\":{\"users\":[]},\"title\":\"x\"}"));
        redis().xadd(QueueIntake.STREAM, entry(tenant.app(), "hk_live_unknown0000000000000000", toDevice(installation, "a")));
        redis().xadd(QueueIntake.STREAM, entry(tenant.app(), other.key(), toDevice(installation, "b")));
        redis().xadd(QueueIntake.STREAM, entry(tenant.app(), noSend, toDevice(installation, "c")));
        Map<String, String> noBody = entry(tenant.app(), tenant.key(), null);
        noBody.remove("body");
        redis().xadd(QueueIntake.STREAM, noBody);

        await().atMost(DEADLINE).until(() -> deadOf(tenant.app()).size() == 6);
        await().atMost(DEADLINE).until(() -> pending() == 0);
        List<StreamMessage<String, String>> dead = deadOf(tenant.app());
        assertThat(dead.get(0).getBody()).containsEntry("body", "{\"to\":").containsEntry("idempotencyKey", "bad-json-1");
        assertThat(dead.get(0).getBody().get("reason")).startsWith("400");
        assertThat(dead.get(1).getBody().get("reason")).startsWith("400").contains("to.users");
        assertThat(dead.get(2).getBody().get("reason")).startsWith("401");
        assertThat(dead.get(3).getBody().get("reason")).startsWith("403").contains("another app");
        assertThat(dead.get(4).getBody().get("reason")).startsWith("403").contains("send");
        assertThat(dead.get(5).getBody().get("reason")).startsWith("400").contains("body");
        for (StreamMessage<String, String> m : dead) {
            assertThat(m.getBody()).doesNotContainKey("key");
            assertThat(m.getBody().values()).noneMatch(v -> v.contains("hk_live_"));
        }
        assertThat(sql.count("SELECT count(*) FROM notifications WHERE app_id = ?", tenant.app())).isZero();

        redis().xadd(QueueIntake.STREAM, entry(tenant.app(), revoked, toDevice(installation, "d")));
        await().atMost(DEADLINE).until(() -> deadOf(tenant.app()).size() == 7);
        assertThat(deadOf(tenant.app()).get(6).getBody().get("reason")).as("a revoked key").startsWith("401");
    }

    @Test
    void entriesADeadConsumerLeftPendingAreTakenOver() {
        String installation = "iphone-ghost-" + tenant.userId();
        String token = iphone(installation);
        try (dev.herald.redis.Redis.Dedicated ghost = client.connect()) {
            RedisCommands<String, String> g = (RedisCommands<String, String>) ghost.sync();
            // appended and read by a consumer that then dies, in one transaction so that Herald's own
            // blocked read cannot take the entries first
            g.multi();
            for (int i = 0; i < 3; i++) {
                g.xadd(QueueIntake.STREAM, entry(tenant.app(), tenant.key(), toDevice(installation, "Ghost " + i)));
            }
            g.xreadgroup(Consumer.from(QueueIntake.GROUP, "ghost-" + tenant.userId()), XReadArgs.Builder.count(100),
                    XReadArgs.StreamOffset.lastConsumed(QueueIntake.STREAM));
            assertThat(g.exec().wasDiscarded()).isFalse();
        }
        assertThat(redis().xpending(QueueIntake.STREAM, QueueIntake.GROUP).getConsumerMessageCount())
                .containsKey("ghost-" + tenant.userId());
        await().atMost(DEADLINE).until(() -> apns.receivedFor(token).size() == 3);
        await().atMost(DEADLINE).until(() -> pending() == 0);
        assertThat(apns.receivedFor(token)).extracting(r -> r.payload().replaceAll(".*Ghost (\\d).*", "$1"))
                .containsExactlyInAnyOrder("0", "1", "2");
    }
}
