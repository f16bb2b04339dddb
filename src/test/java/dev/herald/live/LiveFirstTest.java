package dev.herald.live;

import com.fasterxml.jackson.databind.JsonNode;
import dev.herald.delivery.DeliveryStore;
import dev.herald.support.Api;
import dev.herald.support.GatewayTest;
import dev.herald.support.SseStream;
import io.micronaut.data.jdbc.runtime.JdbcOperations;
import io.micronaut.test.extensions.junit5.annotation.MicronautTest;
import io.micronaut.transaction.TransactionOperations;
import jakarta.inject.Inject;
import org.junit.jupiter.api.Test;

import java.sql.Connection;
import java.sql.ResultSet;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/**
 * A notification to more users than one routing chunk (1,000) reaches the users present when routing
 * begins before their chunks are stored, under the inbox ids the chunks then store; reading such an item
 * or sending a receipt before its chunk is stored answers 503 with {@code Retry-After}, and a job taken
 * over by another node shows the same ids again.
 */
@MicronautTest(transactional = false)
class LiveFirstTest extends GatewayTest {

    private static final Duration DEADLINE = Duration.ofSeconds(30);

    @Inject
    DeliveryStore deliveries;
    @Inject
    JdbcOperations jdbc;
    @Inject
    TransactionOperations<Connection> transactions;

    @Override
    protected Map<String, String> moreProperties() {
        return Map.of("herald.stream.ping", "1s");
    }

    private List<String> users(String prefix, int n) {
        List<String> users = new ArrayList<>(n);
        for (int i = 0; i < n; i++) {
            users.add(String.format("%s-%04d", prefix, i));
        }
        return users;
    }

    private SseStream open(String user) throws Exception {
        SseStream stream = new SseStream(server.getURL().toString(), "", fixtures.userToken(tenant.key(), user), null);
        assertThat(stream.status()).isEqualTo(200);
        assertThat(stream.next("unread", DEADLINE).json().path("unread").asLong()).isZero();
        return stream;
    }

    @Test
    void presentUsersOfALargeFanOutGetTheEventFirstUnderTheIdTheirInboxKeeps() throws Exception {
        List<String> users = users(tenant.app() + "-u", 1_500);
        String inFirstChunk = users.get(3);
        String inSecondChunk = users.get(1_400);
        String german = users.get(1_450);
        assertThat(api.put("/v1/preferences", fixtures.userToken(tenant.key(), german),
                Map.of("locale", "de")).status()).isEqualTo(200);
        Map<String, SseStream> streams = new LinkedHashMap<>();
        try {
            for (String user : List.of(inFirstChunk, inSecondChunk, german)) {
                streams.put(user, open(user));
            }
            Map<String, Object> body = new LinkedHashMap<>();
            body.put("to", Map.of("users", users));
            body.put("title", Map.of("en", "Hello everyone", "de", "Hallo alle"));
            body.put("body", Map.of("en", "Line \"one\"\n<two>", "de", "Zeile ü"));
            body.put("category", "news");
            body.put("link", "https://example.com/a?b=c&d=e");
            body.put("data", Map.of("k", "v \u2603"));
            Api.Response accepted = api.post("/v1/notifications", tenant.key(), body);
            assertThat(accepted.status()).as(accepted.toString()).isEqualTo(202);
            String id = accepted.json().path("id").asText();

            Map<String, SseStream.Event> shown = new LinkedHashMap<>();
            for (var entry : streams.entrySet()) {
                SseStream.Event event = entry.getValue().next("notification", DEADLINE);
                assertThat(event.id()).startsWith("inb_").isEqualTo(event.json().path("id").asText());
                assertThat(event.json().path("notificationId").asText()).isEqualTo(id);
                // the unread count follows once the user's chunk is stored; a stream opened just before (as
                // these were) may be shown the stored item again, under the same id, which clients skip
                SseStream.Event after = entry.getValue().nextNotPing(DEADLINE);
                while (after.name().equals("notification")) {
                    assertThat(after.id()).as("shown again only under the same id").isEqualTo(event.id());
                    assertThat(after.json()).isEqualTo(event.json());
                    after = entry.getValue().nextNotPing(DEADLINE);
                }
                assertThat(after.name()).as("after the notification: " + after).isEqualTo("unread");
                assertThat(after.json().path("unread").asLong()).isEqualTo(1);
                shown.put(entry.getKey(), event);
            }
            // reached together when routing began (not chunk by chunk): the items carry the same time
            assertThat(shown.values().stream().map(e -> e.json().path("createdAt").asText()).distinct()).hasSize(1);
            assertThat(shown.get(german).json().path("title").asText()).isEqualTo("Hallo alle");
            assertThat(shown.get(german).json().path("body").asText()).isEqualTo("Zeile ü");
            assertThat(shown.get(inFirstChunk).json().path("title").asText()).isEqualTo("Hello everyone");

            await().atMost(DEADLINE).untilAsserted(() -> assertThat(api.get("/v1/notifications/" + id, tenant.key())
                    .json().path("status").asText()).isEqualTo("done"));
            for (var entry : shown.entrySet()) {
                String user = entry.getKey();
                JsonNode inbox = api.get("/v1/inbox", fixtures.userToken(tenant.key(), user)).json();
                assertThat(inbox.path("items")).hasSize(1);
                JsonNode stored = inbox.path("items").get(0);
                JsonNode event = entry.getValue().json();
                // the event showed the item exactly as the inbox keeps it: id, time, text in the user's locale, all of it
                assertThat(event).as(user).isEqualTo(stored);
                assertThat(deliveries.userSteps(id, user)).as(user)
                        .containsEntry("live:sent", 1L).containsEntry("push:suppressed:present", 1L);
            }
            // the users away get their steps as ever
            assertThat(deliveries.userSteps(id, users.get(0))).containsEntry("live:suppressed:away", 1L)
                    .containsEntry("push:suppressed:no_device", 1L);
            JsonNode away = api.get("/v1/inbox", fixtures.userToken(tenant.key(), users.get(1_499))).json();
            assertThat(away.path("items")).hasSize(1);
        } finally {
            streams.values().forEach(SseStream::close);
        }
    }

    @Test
    void anItemShownButNotStoredYetAsksForARetryAndANodeTakingTheJobOverStoresItUnderTheIdShown() {
        String alice = tenant.app() + "-alice";
        String bob = tenant.app() + "-bob";
        String carol = tenant.app() + "-carol";
        // a notification scheduled for later: its routing job waits, unclaimed
        Map<String, Object> body = new LinkedHashMap<>();
        body.put("to", Map.of("users", List.of(alice, bob, carol)));
        body.put("title", "Later");
        body.put("sendAt", Instant.now().plus(Duration.ofHours(1)).toString());
        Api.Response accepted = api.post("/v1/notifications", tenant.key(), body);
        assertThat(accepted.status()).as(accepted.toString()).isEqualTo(202);
        String id = accepted.json().path("id").asText();

        long[] job = transactions.executeRead(status -> jdbc.prepareStatement(
                "SELECT id, attempts FROM jobs WHERE notification_id = ?", ps -> {
                    ps.setString(1, id);
                    try (ResultSet rs = ps.executeQuery()) {
                        assertThat(rs.next()).isTrue();
                        return new long[] {rs.getLong(1), rs.getLong(2)};
                    }
                }));
        // a node shows it live to alice (with an inbox item) and bob (without: his preferences say no inbox)
        DeliveryStore.Job first = new DeliveryStore.Job(job[0], id, "", (int) job[1]);
        Instant at = Instant.parse("2026-11-30T12:00:00.123456Z");
        Instant lease = Instant.now().plus(Duration.ofHours(2));
        DeliveryStore.LiveReservation reserved = transactions.executeWrite(status ->
                deliveries.reserveLive(first, List.of(alice, bob), java.util.Set.of(alice), at, lease)).orElseThrow();
        assertThat(reserved.itemIds()).containsOnlyKeys(alice);
        long aliceItem = reserved.itemIds().get(alice);
        assertThat(reserved.at()).isEqualTo(at);

        // shown live, not stored: a read, a delete and a receipt ask to try again in a second
        String aliceToken = fixtures.userToken(tenant.key(), alice);
        String bobToken = fixtures.userToken(tenant.key(), bob);
        for (Api.Response r : List.of(api.post("/v1/inbox/inb_" + aliceItem + "/read", aliceToken, Map.of()),
                api.delete("/v1/inbox/inb_" + aliceItem, aliceToken),
                api.post("/v1/receipts", aliceToken, Map.of("notificationId", id, "event", "opened")),
                api.post("/v1/receipts", bobToken, Map.of("notificationId", id, "event", "received")))) {
            assertThat(r.status()).as(r.toString()).isEqualTo(503);
            assertThat(r.headers().firstValue("Retry-After")).hasValue("1");
            assertThat(r.contentType()).startsWith("application/problem+json");
        }
        // another user's item id is not theirs to ask about
        assertThat(api.post("/v1/inbox/inb_" + aliceItem + "/read", bobToken, Map.of()).status()).isEqualTo(404);
        // once the job's cursor is past the user, their chunk is stored: an item not there is gone
        boolean advanced = transactions.executeWrite(status -> deliveries.advanceJob(first, alice, lease));
        assertThat(advanced).isTrue();
        assertThat(api.post("/v1/inbox/inb_" + aliceItem + "/read", aliceToken, Map.of()).status()).isEqualTo(404);
        assertThat(api.post("/v1/receipts", bobToken, Map.of("notificationId", id, "event", "received")).status())
                .isEqualTo(503);

        // the node dies before storing anything; another takes the job over: those shown keep what they saw
        transactions.executeWrite(status -> jdbc.prepareStatement(
                "UPDATE jobs SET attempts = attempts + 1, cursor = '' WHERE id = ?", ps -> {
            ps.setLong(1, first.id());
            return ps.executeUpdate();
        }));
        DeliveryStore.Job takenOver = new DeliveryStore.Job(first.id(), id, "", first.claim() + 1);
        DeliveryStore.KeptLive kept = transactions.executeRead(status -> deliveries.keptLive(takenOver));
        assertThat(kept.users()).containsExactlyInAnyOrder(alice, bob);
        assertThat(kept.itemIds()).as("bob was shown no item").containsExactly(Map.entry(alice, aliceItem));
        assertThat(kept.at()).isEqualTo(at);
        // the new node shows it to carol, who was not shown it: her item carries the time the others saw
        DeliveryStore.LiveReservation again = transactions.executeWrite(status -> deliveries.reserveLive(takenOver,
                List.of(carol), java.util.Set.of(carol), Instant.now(), lease)).orElseThrow();
        long carolItem = again.itemIds().get(carol);
        assertThat(again.at()).isEqualTo(at);
        assertThat(transactions.executeRead(status -> deliveries.keptLive(takenOver)).itemIds())
                .containsOnly(Map.entry(alice, aliceItem), Map.entry(carol, carolItem));
        // the node that lost the job reserves nothing
        java.util.Optional<DeliveryStore.LiveReservation> lost = transactions.executeWrite(status ->
                deliveries.reserveLive(first, List.of(carol), java.util.Set.of(carol), Instant.now(), lease));
        assertThat(lost).isEmpty();

        // the job comes due and this node's router routes it (three users: one chunk, no live first of its
        // own): each item shown is stored under its id and with its time
        transactions.executeWrite(status -> jdbc.prepareStatement("UPDATE jobs SET run_at = now() WHERE id = ?", ps -> {
            ps.setLong(1, first.id());
            return ps.executeUpdate();
        }));
        await().atMost(DEADLINE).untilAsserted(() -> assertThat(api.get("/v1/notifications/" + id, tenant.key())
                .json().path("status").asText()).isEqualTo("done"));
        JsonNode aliceInbox = api.get("/v1/inbox", aliceToken).json().path("items").get(0);
        assertThat(aliceInbox.path("id").asText()).isEqualTo("inb_" + aliceItem);
        assertThat(Instant.parse(aliceInbox.path("createdAt").asText())).isEqualTo(at);
        JsonNode carolInbox = api.get("/v1/inbox", fixtures.userToken(tenant.key(), carol)).json().path("items").get(0);
        assertThat(carolInbox.path("id").asText()).isEqualTo("inb_" + carolItem);
        assertThat(Instant.parse(carolInbox.path("createdAt").asText())).isEqualTo(at);
        // those shown before count as reached live, whoever is present now: no push instead
        assertThat(deliveries.userSteps(id, alice)).containsEntry("live:sent", 1L);
        assertThat(deliveries.userSteps(id, bob)).containsEntry("live:sent", 1L);
        JsonNode bobInbox = api.get("/v1/inbox", bobToken).json().path("items").get(0);
        assertThat(bobInbox.path("id").asText()).isNotIn("inb_" + aliceItem, "inb_" + carolItem);
        // stored: receipts and reads are answered as ever
        assertThat(api.post("/v1/receipts", bobToken, Map.of("notificationId", id, "event", "received")).status())
                .isEqualTo(204);
        assertThat(api.post("/v1/inbox/inb_" + aliceItem + "/read", aliceToken, Map.of()).status()).isEqualTo(204);
    }
}
