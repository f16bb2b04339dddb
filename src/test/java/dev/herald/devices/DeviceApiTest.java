package dev.herald.devices;

import com.fasterxml.jackson.databind.JsonNode;
import dev.herald.support.Api;
import dev.herald.support.Fixtures;
import dev.herald.support.HeraldTest;
import io.micronaut.test.extensions.junit5.annotation.MicronautTest;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static dev.herald.support.Fixtures.androidDevice;
import static dev.herald.support.Fixtures.apnsToken;
import static dev.herald.support.Fixtures.fcmToken;
import static dev.herald.support.Fixtures.iosDevice;
import static dev.herald.support.Problems.assertInvalid;
import static dev.herald.support.Problems.assertProblem;
import static org.assertj.core.api.Assertions.assertThat;

@MicronautTest(transactional = false)
class DeviceApiTest extends HeraldTest {

    private Fixtures.Tenant tenant;

    @BeforeEach
    void tenant() {
        tenant = fixtures.tenant();
    }

    @Test
    void registersAnIosDeviceWithEverythingItKeeps() {
        String token = apnsToken();
        String voip = apnsToken();
        Map<String, Object> body = iosDevice(tenant.app(), token);
        body.put("voipToken", voip);
        body.put("locale", "fr-FR");
        body.put("timezone", "Europe/Paris");
        body.put("appVersion", "5.2.1");
        body.put("tags", List.of("plan:pro", "beta", "beta"));

        Api.Response created = api.put("/v1/devices/inst-" + token.substring(0, 8), tenant.userToken(), body);

        assertThat(created.status()).as(created.toString()).isEqualTo(201);
        assertThat(created.contentType()).startsWith("application/json");
        JsonNode device = created.json();
        assertThat(device.path("userId").asText()).isEqualTo(tenant.userId());
        assertThat(device.path("installationId").asText()).isEqualTo("inst-" + token.substring(0, 8));
        assertThat(device.path("app").asText()).isEqualTo(tenant.app());
        assertThat(device.path("platform").asText()).isEqualTo("ios");
        assertThat(device.path("voip").asBoolean()).isTrue();
        assertThat(device.path("locale").asText()).isEqualTo("fr-FR");
        assertThat(device.path("timezone").asText()).isEqualTo("Europe/Paris");
        assertThat(device.path("appVersion").asText()).isEqualTo("5.2.1");
        assertThat(device.path("tags")).extracting(JsonNode::asText).containsExactly("beta", "plan:pro");
        assertThat(device.path("pushTokenSuffix").asText()).isEqualTo(token.substring(token.length() - 6));
        assertThat(created.body()).doesNotContain(token).doesNotContain(voip);
        assertThat(Instant.parse(device.path("createdAt").asText())).isEqualTo(device.path("updatedAt").asText());
    }

    @Test
    void registeringAgainUpdatesAndAnswers200() {
        String installation = Fixtures.unique("inst");
        Api.Response first = api.put("/v1/devices/" + installation, tenant.userToken(), androidDevice(tenant.app(), fcmToken()));
        assertThat(first.status()).isEqualTo(201);

        String refreshed = fcmToken();
        Map<String, Object> body = androidDevice(tenant.app(), refreshed);
        body.put("locale", "de");
        Api.Response second = api.put("/v1/devices/" + installation, tenant.userToken(), body);

        assertThat(second.status()).as(second.toString()).isEqualTo(200);
        JsonNode device = second.json();
        assertThat(device.path("locale").asText()).isEqualTo("de");
        assertThat(device.path("pushTokenSuffix").asText()).isEqualTo(refreshed.substring(refreshed.length() - 6));
        assertThat(device.path("createdAt").asText()).isEqualTo(first.json().path("createdAt").asText());
        assertThat(Instant.parse(device.path("lastSeenAt").asText()))
                .isAfter(Instant.parse(first.json().path("lastSeenAt").asText()));
        assertThat(api.get("/v1/devices", tenant.userToken()).json().path("items")).hasSize(1);
    }

    @Test
    void aTokenHeldByAnotherInstallationMovesToTheNewOne() {
        String token = apnsToken();
        assertThat(api.put("/v1/devices/old-install-" + token.substring(0, 6), tenant.userToken(),
                iosDevice(tenant.app(), token)).status()).isEqualTo(201);

        String otherUser = Fixtures.unique("user");
        String otherToken = fixtures.userToken(tenant.key(), otherUser);
        Api.Response moved = api.put("/v1/devices/new-install-" + token.substring(0, 6), otherToken,
                iosDevice(tenant.app(), token));

        assertThat(moved.status()).isEqualTo(201);
        JsonNode old = api.get("/v1/devices/old-install-" + token.substring(0, 6), tenant.userToken()).json();
        assertThat(old.path("pushTokenSuffix").isNull()).as(old.toString()).isTrue();
        assertThat(api.get("/v1/devices/new-install-" + token.substring(0, 6), otherToken).json()
                .path("pushTokenSuffix").asText()).isEqualTo(token.substring(58));
    }

    @Test
    void anInstallationRegisteredByAnotherUserMovesToTheCaller() {
        String installation = Fixtures.unique("shared-phone");
        api.put("/v1/devices/" + installation, tenant.userToken(), androidDevice(tenant.app(), fcmToken()));
        String secondUser = Fixtures.unique("user");
        String secondToken = fixtures.userToken(tenant.key(), secondUser);

        Api.Response moved = api.put("/v1/devices/" + installation, secondToken, androidDevice(tenant.app(), fcmToken()));

        assertThat(moved.status()).isEqualTo(200);
        assertThat(moved.json().path("userId").asText()).isEqualTo(secondUser);
        assertThat(api.get("/v1/devices", tenant.userToken()).json().path("items")).isEmpty();
        assertThat(api.get("/v1/devices", secondToken).json().path("items")).hasSize(1);
        assertProblem(api.get("/v1/devices/" + installation, tenant.userToken()), 404);
    }

    @Test
    void voipTokensAreKeptApartFromAlertTokens() {
        String token = apnsToken();
        Map<String, Object> body = iosDevice(tenant.app(), token);
        body.put("voipToken", token); // the same value may not be both: it would be two different tokens at Apple
        String installation = Fixtures.unique("inst");
        Api.Response created = api.put("/v1/devices/" + installation, tenant.userToken(), body);
        assertThat(created.status()).isEqualTo(201);
        assertThat(created.json().path("voip").asBoolean()).isTrue();

        Api.Response withoutVoip = api.put("/v1/devices/" + installation, tenant.userToken(), iosDevice(tenant.app(), token));
        assertThat(withoutVoip.json().path("voip").asBoolean()).isFalse();
        assertThat(withoutVoip.json().path("pushTokenSuffix").asText()).isEqualTo(token.substring(58));
    }

    @Test
    void usersSeeAndChangeOnlyTheirOwnDevices() {
        String installation = Fixtures.unique("mine");
        api.put("/v1/devices/" + installation, tenant.userToken(), androidDevice(tenant.app(), fcmToken()));
        String stranger = fixtures.userToken(tenant.key(), Fixtures.unique("stranger"));

        assertProblem(api.get("/v1/devices/" + installation, stranger), 404);
        assertProblem(api.delete("/v1/devices/" + installation, stranger), 404);
        assertThat(api.get("/v1/devices", stranger).json().path("items")).isEmpty();
        assertThat(api.get("/v1/devices/" + installation, tenant.userToken()).status()).isEqualTo(200);
    }

    @Test
    void deleteForgetsTheInstallation() {
        String installation = Fixtures.unique("gone");
        api.put("/v1/devices/" + installation, tenant.userToken(), androidDevice(tenant.app(), fcmToken()));

        Api.Response deleted = api.delete("/v1/devices/" + installation, tenant.userToken());

        assertThat(deleted.status()).isEqualTo(204);
        assertThat(deleted.body()).isEmpty();
        assertProblem(api.get("/v1/devices/" + installation, tenant.userToken()), 404);
        assertProblem(api.delete("/v1/devices/" + installation, tenant.userToken()), 404);
    }

    @Test
    void listsPageWithAnOpaqueCursor() {
        for (int i = 0; i < 5; i++) {
            api.put("/v1/devices/page-" + i + "-" + tenant.userId().substring(5), tenant.userToken(),
                    androidDevice(tenant.app(), fcmToken()));
        }
        List<String> seen = new ArrayList<>();
        String cursor = null;
        int pages = 0;
        do {
            Api.Response page = api.get("/v1/devices?limit=2" + (cursor == null ? "" : "&cursor=" + cursor),
                    tenant.userToken());
            assertThat(page.status()).isEqualTo(200);
            page.json().path("items").forEach(d -> seen.add(d.path("installationId").asText()));
            cursor = page.json().path("nextCursor").isNull() ? null : page.json().path("nextCursor").asText();
            pages++;
        } while (cursor != null);
        assertThat(pages).isEqualTo(3);
        assertThat(seen).hasSize(5).doesNotHaveDuplicates().isSorted();
        assertInvalid(api.get("/v1/devices?limit=101", tenant.userToken()), "limit");
        assertInvalid(api.get("/v1/devices?limit=0", tenant.userToken()), "limit");
        assertInvalid(api.get("/v1/devices?cursor=not-a-cursor", tenant.userToken()), "cursor");
    }

    @ParameterizedTest
    @ValueSource(strings = {"abc", "0123456789abcdef", "zz23456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0"})
    void refusesAnIosTokenThatIsNotAnApnsToken(String token) {
        assertInvalid(api.put("/v1/devices/" + Fixtures.unique("i"), tenant.userToken(), iosDevice(tenant.app(), token)),
                "pushToken");
    }

    @ParameterizedTest
    @ValueSource(strings = {"has space", "semi;colon", "slash/token", ""})
    void refusesAnAndroidTokenThatIsNotAnFcmToken(String token) {
        assertInvalid(api.put("/v1/devices/" + Fixtures.unique("a"), tenant.userToken(), androidDevice(tenant.app(), token)),
                "pushToken");
    }

    @Test
    void refusesAnFcmTokenOver4096Characters() {
        assertInvalid(api.put("/v1/devices/" + Fixtures.unique("a"), tenant.userToken(),
                androidDevice(tenant.app(), "a".repeat(4097))), "pushToken");
        assertThat(api.put("/v1/devices/" + Fixtures.unique("a"), tenant.userToken(),
                androidDevice(tenant.app(), "a".repeat(4096))).status()).isEqualTo(201);
    }

    @Test
    void refusesAVoipTokenOnAndroid() {
        Map<String, Object> body = androidDevice(tenant.app(), fcmToken());
        body.put("voipToken", apnsToken());
        assertInvalid(api.put("/v1/devices/" + Fixtures.unique("a"), tenant.userToken(), body), "voipToken");
    }

    @Test
    void namesEachInvalidField() {
        String path = "/v1/devices/" + Fixtures.unique("bad");
        assertInvalid(api.put(path, tenant.userToken(), Map.of("platform", "ios", "pushToken", apnsToken())), "app");
        assertInvalid(api.put(path, tenant.userToken(), Map.of("app", tenant.app(), "platform", "windows",
                "pushToken", "x")), "platform");
        assertInvalid(api.put(path, tenant.userToken(), Map.of("app", "no-such-app", "platform", "android",
                "pushToken", "x")), "app");
        Map<String, Object> zone = androidDevice(tenant.app(), fcmToken());
        zone.put("timezone", "Mars/Olympus");
        assertInvalid(api.put(path, tenant.userToken(), zone), "timezone");
        Map<String, Object> locale = androidDevice(tenant.app(), fcmToken());
        locale.put("locale", "not a locale");
        assertInvalid(api.put(path, tenant.userToken(), locale), "locale");
        Map<String, Object> tags = androidDevice(tenant.app(), fcmToken());
        tags.put("tags", List.of("ok", "not ok"));
        assertInvalid(api.put(path, tenant.userToken(), tags), "tags[1]");
        Map<String, Object> unknown = androidDevice(tenant.app(), fcmToken());
        unknown.put("color", "blue");
        assertInvalid(api.put(path, tenant.userToken(), unknown), "color");
        Map<String, Object> wrongType = androidDevice(tenant.app(), fcmToken());
        wrongType.put("tags", "beta");
        assertInvalid(api.put(path, tenant.userToken(), wrongType), "tags");
        assertInvalid(api.put("/v1/devices/" + "x".repeat(129), tenant.userToken(), androidDevice(tenant.app(), fcmToken())),
                "installationId");
        assertInvalid(api.put("/v1/devices/bad%20id", tenant.userToken(), androidDevice(tenant.app(), fcmToken())),
                "installationId");
        assertThat(api.get("/v1/devices", tenant.userToken()).json().path("items")).isEmpty();
    }

    @Test
    void takesOnlyUserTokens() {
        String path = "/v1/devices/" + Fixtures.unique("k");
        assertProblem(api.put(path, null, androidDevice(tenant.app(), fcmToken())), 401);
        assertProblem(api.put(path, tenant.key(), androidDevice(tenant.app(), fcmToken())), 403);
        assertProblem(api.put(path, Fixtures.ADMIN_KEY, androidDevice(tenant.app(), fcmToken())), 403);
        assertProblem(api.get("/v1/devices", "garbage"), 401);
    }
}
