package dev.herald.webhooks;

import dev.herald.support.Api;
import dev.herald.support.Fixtures;
import dev.herald.support.GatewayTest;
import dev.herald.support.Sql;
import dev.herald.support.WebhookReceiver;
import io.micronaut.test.extensions.junit5.annotation.MicronautTest;
import jakarta.inject.Inject;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.List;
import java.util.Map;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/**
 * Server-side request forgery, with private webhook targets not allowed (the default): a webhook
 * whose host resolves into the private network when an event is sent is not called, even though it
 * was accepted when it was set (a name may resolve elsewhere later); the event records why.
 */
@MicronautTest(transactional = false)
class WebhookPrivateAddressTest extends GatewayTest {

    @Inject
    Sql sql;

    @Test
    void aWebhookThatResolvesInwardAtSendTimeIsNotCalled() {
        try (WebhookReceiver receiver = new WebhookReceiver()) {
            // accepted: the name does not resolve now (.invalid never does)
            Api.Response set = api.patch("/v1/apps/" + tenant.app(), Fixtures.ADMIN_KEY,
                    Map.of("webhook", Map.of("url", "http://hooks.herald-test.invalid/x", "secret", "0123456789abcdef")));
            assertThat(set.status()).as(set.toString()).isEqualTo(200);
            // ... and later it leads to loopback, as a rebinding name would
            sql.update("UPDATE apps SET webhook = jsonb_set(webhook, '{url}', to_jsonb(?::text)) WHERE id = ?",
                    receiver.url(), tenant.app());

            Api.Response accepted = api.post("/v1/notifications", tenant.key(),
                    Map.of("to", Map.of("users", List.of(tenant.userId())), "title", "Hello"));
            assertThat(accepted.status()).as(accepted.toString()).isEqualTo(202);

            await().atMost(Duration.ofSeconds(30)).until(() -> sql.count(
                    "SELECT count(*) FROM webhook_events WHERE app_id = ? AND last_error = 'private_address'",
                    tenant.app()) > 0);
            assertThat(receiver.accepted()).isEmpty();
            assertThat(receiver.refused()).isZero();
        }
    }

    @Test
    void aWebhookUrlCarryingALineBreakIsRefused() {
        for (String url : new String[]{"https://hooks.example.com/x\r\nX-Injected: 1", "https://hooks.example.com/\nx",
                "https://hooks.example.com/x y"}) {
            Api.Response r = api.patch("/v1/apps/" + tenant.app(), Fixtures.ADMIN_KEY,
                    Map.of("webhook", Map.of("url", url, "secret", "0123456789abcdef")));
            dev.herald.support.Problems.assertInvalid(r, "webhook.url");
        }
        assertThat(sql.string("SELECT webhook::text FROM apps WHERE id = ?", tenant.app())).isNull();
    }
}
