package dev.herald.notifications;

import com.eatthepath.pushy.apns.server.RejectionReason;
import dev.herald.support.Api;
import dev.herald.support.GatewayTest;
import dev.herald.support.MockApns;
import dev.herald.support.Sql;
import io.micronaut.test.extensions.junit5.annotation.MicronautTest;
import jakarta.inject.Inject;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static dev.herald.support.Fixtures.apnsToken;
import static dev.herald.support.Fixtures.iosDevice;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/**
 * After an outage long enough that its pushes were put off by minutes of backoff, they go out as soon
 * as the gateway is back (its circuit closed again), not when their backoff ends.
 */
@MicronautTest(transactional = false)
class GatewayRecoveryTest extends GatewayTest {

    private static final Duration DEADLINE = Duration.ofSeconds(30);

    @Inject
    Sql sql;

    private String send(String installationId, String title) {
        Api.Response accepted = api.post("/v1/notifications", tenant.key(),
                Map.of("to", Map.of("devices", List.of(installationId)), "title", title));
        assertThat(accepted.status()).as(accepted.toString()).isEqualTo(202);
        return accepted.json().path("id").asText();
    }

    private long pushes(List<String> ids, String status) {
        return sql.count("SELECT count(*) FROM deliveries WHERE channel = 'push' AND status = ? AND notification_id = ANY (?::text[])",
                status, "{" + String.join(",", ids) + "}");
    }

    @Test
    void pushesPutOffDuringAnOutageGoOutWhenTheGatewayIsBack() {
        String installation = "iphone-recovery-" + tenant.userId();
        Api.Response registered = api.put("/v1/devices/" + installation, tenant.userToken(), iosDevice(tenant.app(), apnsToken()));
        assertThat(registered.status()).isEqualTo(201);

        apns.answerEveryone(MockApns.Answer.reject(RejectionReason.SERVICE_UNAVAILABLE));
        List<String> during = new ArrayList<>();
        for (int i = 0; i < 25; i++) {
            during.add(send(installation, "During the outage " + i));
        }
        // each tried at least once and answered 503 (enough to open the circuit)
        await().atMost(DEADLINE).until(() -> sql.count("SELECT count(*) FROM deliveries WHERE channel = 'push' AND status = 'queued'"
                + " AND attempts >= 1 AND reason IS NOT NULL AND notification_id = ANY (?::text[])",
                "{" + String.join(",", during) + "}") == during.size());
        // an outage of hours: their next tries are minutes away
        sql.update("UPDATE deliveries SET next_attempt_at = now() + interval '10 minutes' WHERE channel = 'push'"
                + " AND status = 'queued' AND notification_id = ANY (?::text[])", "{" + String.join(",", during) + "}");

        apns.answerEveryone(null);
        List<String> after = new ArrayList<>();
        for (int i = 0; i < 6; i++) {
            after.add(send(installation, "After " + i));
        }

        await().atMost(DEADLINE).until(() -> pushes(after, "sent") == after.size());
        await().atMost(DEADLINE).until(() -> pushes(during, "sent") == during.size());
    }
}
