package dev.herald.inbox;

import com.fasterxml.jackson.databind.JsonNode;
import dev.herald.support.Api;
import dev.herald.support.FakeFcm;
import dev.herald.support.Fixtures;
import dev.herald.support.GatewayTest;
import dev.herald.support.MockApns;
import io.micronaut.test.extensions.junit5.annotation.MicronautTest;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.time.LocalTime;
import java.time.ZoneId;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static dev.herald.support.Fixtures.apnsToken;
import static dev.herald.support.Fixtures.iosDevice;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/**
 * The inbox, preferences and receipts end to end: notifications routed to users land in their inbox in
 * their locale, pushes follow their preferences and quiet hours, receipts move deliveries forward.
 */
@MicronautTest(transactional = false)
class InboxTest extends GatewayTest {

    private static final Duration DEADLINE = Duration.ofSeconds(20);

    private String send(String key, Map<String, Object> body) {
        Api.Response accepted = api.post("/v1/notifications", key, body);
        assertThat(accepted.status()).as(accepted.toString()).isEqualTo(202);
        return accepted.json().path("id").asText();
    }

    private JsonNode awaitDone(String key, String id) {
        JsonNode[] last = new JsonNode[1];
        await().atMost(DEADLINE).untilAsserted(() -> {
            last[0] = api.get("/v1/notifications/" + id + "?limit=100", key).json();
            assertThat(last[0].path("status").asText()).as(last[0].toString()).isEqualTo("done");
        });
        return last[0];
    }

    private static List<JsonNode> deliveries(JsonNode status, String channel) {
        List<JsonNode> found = new ArrayList<>();
        status.path("deliveries").path("items").forEach(d -> {
            if (channel.equals(d.path("channel").asText())) {
                found.add(d);
            }
        });
        return found;
    }

    private String iphone(String userToken, String app) {
        String token = apnsToken();
        Api.Response r = api.put("/v1/devices/iphone-" + token.substring(0, 10), userToken, iosDevice(app, token));
        assertThat(r.status()).as(r.toString()).isIn(200, 201);
        return token;
    }

    private void putPreferences(String userToken, Map<String, Object> preferences) {
        Api.Response r = api.put("/v1/preferences", userToken, preferences);
        assertThat(r.status()).as(r.toString()).isEqualTo(200);
    }

    private static Map<String, Object> toUser(String user, String title) {
        Map<String, Object> body = new LinkedHashMap<>();
        body.put("to", Map.of("users", List.of(user)));
        body.put("title", title);
        return body;
    }

    @Test
    void preferencesHaveDefaultsAndAreValidated() {
        JsonNode defaults = api.get("/v1/preferences", tenant.userToken()).json();
        assertThat(defaults.path("channels").path("push").asBoolean()).isTrue();
        assertThat(defaults.path("channels").path("inApp").asBoolean()).isTrue();
        assertThat(defaults.path("channels").path("email").asBoolean()).isTrue();
        assertThat(defaults.path("locale").asText()).isEqualTo("en");
        assertThat(defaults.path("timezone").asText()).isEqualTo("UTC");
        assertThat(defaults.path("quietHours").isNull()).isTrue();
        assertThat(defaults.path("email").isNull()).isTrue();

        Map<String, Object> prefs = new LinkedHashMap<>();
        prefs.put("channels", Map.of("email", false));
        prefs.put("categories", Map.of("marketing", Map.of("push", false)));
        prefs.put("email", "ada@example.com");
        prefs.put("locale", "fr-FR");
        prefs.put("timezone", "Europe/Paris");
        prefs.put("quietHours", Map.of("start", "22:00", "end", "07:00"));
        Api.Response saved = api.put("/v1/preferences", tenant.userToken(), prefs);
        assertThat(saved.status()).as(saved.toString()).isEqualTo(200);
        JsonNode again = api.get("/v1/preferences", tenant.userToken()).json();
        assertThat(again).isEqualTo(saved.json());
        assertThat(again.path("channels").path("email").asBoolean()).isFalse();
        assertThat(again.path("channels").path("push").asBoolean()).isTrue();
        assertThat(again.at("/categories/marketing/push").asBoolean()).isFalse();
        assertThat(again.at("/quietHours/start").asText()).isEqualTo("22:00");

        assertField(Map.of("quietHours", Map.of("start", "25:00", "end", "07:00")), "quietHours.start");
        assertField(Map.of("quietHours", Map.of("start", "7:00", "end", "08:00")), "quietHours.start");
        assertField(Map.of("quietHours", Map.of("start", "08:00", "end", "08:00")), "quietHours.end");
        assertField(Map.of("timezone", "Mars/Olympus"), "timezone");
        assertField(Map.of("email", "not an address"), "email");
        assertField(Map.of("channels", Map.of("push", "yes")), "channels.push");
        assertField(Map.of("channels", Map.of("pager", true)), "channels.pager");
        assertThat(api.get("/v1/preferences", tenant.key()).status()).as("an app key is not a user").isEqualTo(403);
    }

    private void assertField(Map<String, Object> body, String field) {
        Api.Response r = api.put("/v1/preferences", tenant.userToken(), body);
        assertThat(r.status()).as(r.toString()).isEqualTo(400);
        assertThat(Fixtures.fields(r.json())).as(r.toString()).contains(field);
    }

    @Test
    void notificationsLandInTheInboxInTheUsersLocaleUnreadFirstThenNewest() {
        putPreferences(tenant.userToken(), Map.of("locale", "fr"));
        List<String> ids = new ArrayList<>();
        for (int i = 0; i < 5; i++) {
            Map<String, Object> body = new LinkedHashMap<>();
            body.put("to", Map.of("users", List.of(tenant.userId())));
            body.put("title", Map.of("en", "Hello " + i, "fr", "Bonjour " + i));
            body.put("body", Map.of("en", "Body", "fr", "Corps"));
            body.put("category", "news");
            body.put("type", "SUCCESS");
            body.put("link", "myapp://n/" + i);
            body.put("data", Map.of("n", Integer.toString(i)));
            ids.add(send(tenant.key(), body));
        }
        ids.forEach(id -> awaitDone(tenant.key(), id));

        JsonNode inbox = api.get("/v1/inbox", tenant.userToken()).json();
        assertThat(inbox.path("unreadCount").asLong()).isEqualTo(5);
        assertThat(inbox.path("items")).hasSize(5);
        JsonNode newest = inbox.path("items").get(0);
        assertThat(newest.path("notificationId").asText()).isEqualTo(ids.get(4));
        assertThat(newest.path("title").asText()).isEqualTo("Bonjour 4");
        assertThat(newest.path("body").asText()).isEqualTo("Corps");
        assertThat(newest.path("app").asText()).isEqualTo(tenant.app());
        assertThat(newest.path("category").asText()).isEqualTo("news");
        assertThat(newest.path("type").asText()).isEqualTo("SUCCESS");
        assertThat(newest.path("link").asText()).isEqualTo("myapp://n/4");
        assertThat(newest.path("data").path("n").asText()).isEqualTo("4");
        assertThat(newest.path("readAt").isNull()).isTrue();
        assertThat(newest.path("createdAt").asText()).isNotBlank();

        // read the newest: it goes after the unread ones
        String newestId = newest.path("id").asText();
        assertThat(api.post("/v1/inbox/" + newestId + "/read", tenant.userToken(), Map.of()).status()).isEqualTo(204);
        JsonNode afterRead = api.get("/v1/inbox", tenant.userToken()).json();
        assertThat(afterRead.path("unreadCount").asLong()).isEqualTo(4);
        assertThat(afterRead.path("items").get(0).path("notificationId").asText()).isEqualTo(ids.get(3));
        assertThat(afterRead.path("items").get(4).path("id").asText()).isEqualTo(newestId);
        assertThat(afterRead.path("items").get(4).path("readAt").asText()).isNotBlank();
        assertThat(api.get("/v1/inbox/unread-count", tenant.userToken()).json().path("unread").asLong()).isEqualTo(4);
        assertThat(api.get("/v1/inbox?unreadOnly=true", tenant.userToken()).json().path("items")).hasSize(4);

        // paging: 2 at a time, in the same order, nothing twice
        List<String> paged = new ArrayList<>();
        String cursor = null;
        do {
            JsonNode page = api.get("/v1/inbox?limit=2" + (cursor == null ? "" : "&cursor=" + cursor), tenant.userToken()).json();
            page.path("items").forEach(i -> paged.add(i.path("id").asText()));
            cursor = page.path("nextCursor").isNull() ? null : page.path("nextCursor").asText();
        } while (cursor != null);
        List<String> all = new ArrayList<>();
        afterRead.path("items").forEach(i -> all.add(i.path("id").asText()));
        assertThat(paged).isEqualTo(all);

        Api.Response readAll = api.post("/v1/inbox/read-all", tenant.userToken(), Map.of());
        assertThat(readAll.status()).isEqualTo(200);
        assertThat(readAll.json().path("updated").asInt()).isEqualTo(4);
        assertThat(api.get("/v1/inbox/unread-count", tenant.userToken()).json().path("unread").asLong()).isZero();

        assertThat(api.delete("/v1/inbox/" + newestId, tenant.userToken()).status()).isEqualTo(204);
        assertThat(api.get("/v1/inbox", tenant.userToken()).json().path("items")).hasSize(4);
        assertThat(api.delete("/v1/inbox/" + newestId, tenant.userToken()).status()).isEqualTo(404);
        assertThat(api.get("/v1/inbox?limit=101", tenant.userToken()).status()).isEqualTo(400);
        assertThat(api.get("/v1/inbox?cursor=garbage", tenant.userToken()).status()).isEqualTo(400);
    }

    @Test
    void anotherUsersItemIsNotFoundAndTheConsolidatedViewSpansApps() {
        String id = send(tenant.key(), toUser(tenant.userId(), "Mine"));
        awaitDone(tenant.key(), id);
        String item = api.get("/v1/inbox", tenant.userToken()).json().path("items").get(0).path("id").asText();

        String stranger = fixtures.userToken(tenant.key(), Fixtures.unique("stranger"));
        assertThat(api.post("/v1/inbox/" + item + "/read", stranger, Map.of()).status()).isEqualTo(404);
        assertThat(api.delete("/v1/inbox/" + item, stranger).status()).isEqualTo(404);
        assertThat(api.get("/v1/inbox", stranger).json().path("items")).isEmpty();
        assertThat(api.get("/v1/inbox", tenant.key()).status()).isEqualTo(403);

        // the same user id through another app
        Fixtures.Tenant other = fixtures.tenant();
        String fromOther = send(other.key(), toUser(tenant.userId(), "From the other app"));
        awaitDone(other.key(), fromOther);
        assertThat(api.get("/v1/inbox", tenant.userToken()).json().path("items")).hasSize(2);
        JsonNode onlyOther = api.get("/v1/inbox?app=" + other.app(), tenant.userToken()).json();
        assertThat(onlyOther.path("items")).hasSize(1);
        assertThat(onlyOther.path("items").get(0).path("title").asText()).isEqualTo("From the other app");
        assertThat(onlyOther.path("unreadCount").asLong()).isEqualTo(1);
        assertThat(api.post("/v1/inbox/read-all?app=" + other.app(), tenant.userToken(), Map.of()).json()
                .path("updated").asInt()).isEqualTo(1);
        assertThat(api.get("/v1/inbox/unread-count", tenant.userToken()).json().path("unread").asLong()).isEqualTo(1);
        assertThat(api.get("/v1/inbox?app=Not_An_App", tenant.userToken()).status()).isEqualTo(400);
    }

    @Test
    void pushFollowsPreferencesAndQuietHours() {
        String token = iphone(tenant.userToken(), tenant.app());
        putPreferences(tenant.userToken(), Map.of("categories", Map.of("marketing", Map.of("push", false, "inApp", false))));

        Map<String, Object> marketing = toUser(tenant.userId(), "Sale!");
        marketing.put("category", "marketing");
        JsonNode status = awaitDone(tenant.key(), send(tenant.key(), marketing));
        JsonNode push = deliveries(status, "push").get(0);
        assertThat(push.path("status").asText()).isEqualTo("suppressed");
        assertThat(push.path("reason").asText()).isEqualTo("preference");
        assertThat(push.path("installationId").asText()).startsWith("iphone-");
        assertThat(deliveries(status, "inApp").get(0).path("reason").asText()).isEqualTo("preference");
        assertThat(api.get("/v1/inbox", tenant.userToken()).json().path("items")).isEmpty();
        assertThat(apns.receivedFor(token)).isEmpty();

        // quiet hours around now in the user's timezone: normal waits out (suppressed), high goes through
        ZoneId zone = ZoneId.of("Asia/Tokyo");
        LocalTime now = LocalTime.now(zone);
        putPreferences(tenant.userToken(), Map.of("timezone", zone.getId(), "quietHours",
                Map.of("start", hhmm(now.minusHours(1)), "end", hhmm(now.plusHours(1)))));
        JsonNode quiet = awaitDone(tenant.key(), send(tenant.key(), toUser(tenant.userId(), "Later")));
        assertThat(deliveries(quiet, "push").get(0).path("reason").asText()).isEqualTo("quiet_hours");
        assertThat(deliveries(quiet, "inApp").get(0).path("status").asText()).as("the inbox has no quiet hours").isEqualTo("sent");

        Map<String, Object> urgent = toUser(tenant.userId(), "Now");
        urgent.put("priority", "high");
        JsonNode high = awaitDone(tenant.key(), send(tenant.key(), urgent));
        assertThat(deliveries(high, "push").get(0).path("status").asText()).isEqualTo("sent");
        assertThat(apns.receivedFor(token)).hasSize(1);

        // a user with no device and push off: one suppressed delivery without installation
        String lonely = Fixtures.unique("lonely");
        putPreferences(fixtures.userToken(tenant.key(), lonely), Map.of("channels", Map.of("push", false, "email", false)));
        JsonNode none = awaitDone(tenant.key(), send(tenant.key(), toUser(lonely, "Hi")));
        assertThat(deliveries(none, "push")).hasSize(1);
        assertThat(deliveries(none, "push").get(0).has("installationId")).isFalse();
        assertThat(deliveries(none, "push").get(0).path("reason").asText()).isEqualTo("preference");
        assertThat(deliveries(none, "email").get(0).path("reason").asText()).isEqualTo("preference");
    }

    @Test
    void deviceAndTagSendsFollowTheirUsersPreferencesToo() {
        String token = apnsToken();
        String installation = "iphone-" + token.substring(0, 10);
        Map<String, Object> device = iosDevice(tenant.app(), token);
        device.put("tags", List.of("beta"));
        assertThat(api.put("/v1/devices/" + installation, tenant.userToken(), device).status()).isIn(200, 201);
        putPreferences(tenant.userToken(), Map.of("categories", Map.of("promo", Map.of("push", false))));

        Map<String, Object> promo = new LinkedHashMap<>();
        promo.put("to", Map.of("devices", List.of(installation)));
        promo.put("title", "Deal");
        promo.put("category", "promo");
        JsonNode refused = awaitDone(tenant.key(), send(tenant.key(), promo));
        assertThat(deliveries(refused, "push").get(0).path("status").asText()).isEqualTo("suppressed");
        assertThat(deliveries(refused, "push").get(0).path("reason").asText()).isEqualTo("preference");

        ZoneId zone = ZoneId.of("America/Sao_Paulo");
        LocalTime now = LocalTime.now(zone);
        putPreferences(tenant.userToken(), Map.of("timezone", zone.getId(), "quietHours",
                Map.of("start", hhmm(now.minusHours(1)), "end", hhmm(now.plusHours(1)))));
        JsonNode quiet = awaitDone(tenant.key(), send(tenant.key(), Map.of("to", Map.of("tags", List.of("beta")), "title", "Hush")));
        assertThat(deliveries(quiet, "push").get(0).path("reason").asText()).isEqualTo("quiet_hours");
        JsonNode urgent = awaitDone(tenant.key(), send(tenant.key(),
                Map.of("to", Map.of("tags", List.of("beta")), "title", "Now", "priority", "high")));
        assertThat(deliveries(urgent, "push").get(0).path("status").asText()).isEqualTo("sent");
        assertThat(apns.receivedFor(token)).hasSize(1);
    }

    private static String hhmm(LocalTime t) {
        return String.format("%02d:%02d", t.getHour(), t.getMinute());
    }

    @Test
    void receiptsMoveDeliveriesForwardNeverBack() {
        String token = iphone(tenant.userToken(), tenant.app());
        String id = send(tenant.key(), toUser(tenant.userId(), "Read me"));
        awaitDone(tenant.key(), id);
        await().atMost(DEADLINE).until(() -> apns.receivedFor(token).size() == 1);
        String installation = deliveries(api.get("/v1/notifications/" + id, tenant.key()).json(), "push").get(0)
                .path("installationId").asText();

        assertThat(api.post("/v1/receipts", tenant.userToken(),
                Map.of("notificationId", id, "installationId", installation, "event", "opened")).status()).isEqualTo(204);
        assertThat(api.post("/v1/receipts", tenant.userToken(),
                Map.of("notificationId", id, "event", "received")).status()).isEqualTo(204);

        JsonNode status = api.get("/v1/notifications/" + id, tenant.key()).json();
        assertThat(deliveries(status, "push").get(0).path("status").asText()).as("never backwards").isEqualTo("opened");
        assertThat(deliveries(status, "inApp").get(0).path("status").asText()).isEqualTo("opened");
        assertThat(status.path("counts").path("opened").asInt()).isEqualTo(2);

        String stranger = fixtures.userToken(tenant.key(), Fixtures.unique("stranger"));
        assertThat(api.post("/v1/receipts", stranger, Map.of("notificationId", id, "event", "opened")).status()).isEqualTo(404);
        Api.Response bad = api.post("/v1/receipts", tenant.userToken(), Map.of("notificationId", id, "event", "seen"));
        assertThat(bad.status()).isEqualTo(400);
        assertThat(Fixtures.fields(bad.json())).contains("event");
    }

    @Test
    void badgeUnreadCountsTheInboxAndReadsReachTheOtherDevicesSilently() {
        assertThat(api.patch("/v1/apps/" + tenant.app(), Fixtures.ADMIN_KEY, Map.of("syncBadges", true)).status()).isEqualTo(200);
        String phone = apnsToken();
        String tablet = apnsToken();
        assertThat(api.put("/v1/devices/phone-" + tenant.userId(), tenant.userToken(), iosDevice(tenant.app(), phone))
                .status()).isIn(200, 201);
        assertThat(api.put("/v1/devices/tablet-" + tenant.userId(), tenant.userToken(), iosDevice(tenant.app(), tablet))
                .status()).isIn(200, 201);
        Map<String, Object> body = toUser(tenant.userId(), "Two unread");
        body.put("badge", "unread");
        awaitDone(tenant.key(), send(tenant.key(), toUser(tenant.userId(), "First")));
        awaitDone(tenant.key(), send(tenant.key(), body));
        await().atMost(DEADLINE).until(() -> apns.receivedFor(phone).size() == 2);
        JsonNode second = json(apns.receivedFor(phone).get(1).payload());
        assertThat(second.at("/aps/badge").asInt()).as("the unread count, this notification included").isEqualTo(2);

        String item = api.get("/v1/inbox", tenant.userToken()).json().path("items").get(0).path("id").asText();
        assertThat(api.post("/v1/inbox/" + item + "/read?installationId=phone-" + tenant.userId(), tenant.userToken(),
                Map.of()).status()).isEqualTo(204);

        await().atMost(DEADLINE).until(() -> apns.receivedFor(tablet).size() == 3);
        MockApns.Received sync = apns.receivedFor(tablet).get(2);
        assertThat(sync.header("apns-push-type")).isEqualTo("background");
        assertThat(sync.header("apns-priority")).isEqualTo("5");
        JsonNode payload = json(sync.payload());
        assertThat(payload.at("/aps/badge").asInt()).isEqualTo(1);
        assertThat(payload.at("/aps/content-available").asInt()).isEqualTo(1);
        assertThat(payload.path("type").asText()).isEqualTo("inbox.sync");
        assertThat(payload.path("unread").asText()).isEqualTo("1");

        // a second change within 30 s waits for the window's end: nothing more now
        assertThat(api.post("/v1/inbox/read-all?installationId=phone-" + tenant.userId(), tenant.userToken(), Map.of())
                .status()).isEqualTo(200);
        await().during(Duration.ofSeconds(2)).atMost(Duration.ofSeconds(5)).until(() -> apns.receivedFor(tablet).size() == 3);
        assertThat(apns.receivedFor(phone)).as("the device that acted gets no sync").hasSize(2);
    }

    private static JsonNode json(String payload) {
        try {
            return Api.JSON.readTree(payload);
        } catch (Exception e) {
            throw new AssertionError(payload, e);
        }
    }
}
