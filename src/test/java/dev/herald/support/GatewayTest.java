package dev.herald.support;

import com.fasterxml.jackson.databind.JsonNode;
import io.micronaut.test.support.TestPropertyProvider;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.TestInstance;

import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/**
 * Base of the tests that deliver: pushy's {@code MockApnsServer} (TLS, token auth checked) and a loopback
 * FCM v1 endpoint, Herald pointed at both, and before each test a fresh tenant whose app holds
 * credentials for both. Subclasses add their own settings with {@link #moreProperties()}.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
public abstract class GatewayTest extends HeraldTest implements TestPropertyProvider {

    protected static final String TEAM = "TEAM123456";
    protected static final String KEY_ID = "KEY1234567";
    protected static final String BUNDLE = "com.example.herald";

    protected final MockApns apns = MockApns.create();
    protected final FakeFcm fcm = new FakeFcm();
    protected final String p8 = Fixtures.p8();
    protected Fixtures.Tenant tenant;

    /** Settings on top of the gateways' (poll intervals, timeouts). */
    protected Map<String, String> moreProperties() {
        return Map.of();
    }

    @Override
    public Map<String, String> getProperties() {
        fcm.start();
        apns.trust(TEAM, KEY_ID, p8);
        Map<String, String> properties = new HashMap<>(Map.of(
                "herald.apns.host", "127.0.0.1",
                "herald.apns.port", Integer.toString(apns.port()),
                "herald.apns.trusted-cert", apns.certificatePath().toString(),
                "herald.fcm.url", fcm.baseUrl(),
                "herald.delivery.poll", "100ms"));
        properties.putAll(moreProperties());
        return properties;
    }

    @AfterAll
    void closeMocks() {
        apns.close();
        fcm.close();
    }

    @BeforeEach
    void tenantWithGateways() {
        tenant = fixtures.tenant();
        configureGateways(tenant.app());
    }

    /** Gives the app APNs (token auth, sandbox) and FCM (a service account whose token endpoint is the fake) credentials. */
    protected void configureGateways(String app) {
        Map<String, Object> apnsBlock = Map.of("teamId", TEAM, "keyId", KEY_ID, "privateKey", p8,
                "bundleId", BUNDLE, "environment", "sandbox");
        Map<String, Object> fcmBlock = Map.of("serviceAccount", Fixtures.serviceAccount("herald-test", fcm.tokenUri()));
        Api.Response patched = api.patch("/v1/apps/" + app, Fixtures.ADMIN_KEY, Map.of("apns", apnsBlock, "fcm", fcmBlock));
        assertThat(patched.status()).as(patched.toString()).isEqualTo(200);
    }

    /** Posts a notification with the tenant's key; answers its id (a 202 asserted). */
    protected String sendNotification(Map<String, Object> body) {
        Api.Response accepted = api.post("/v1/notifications", tenant.key(), body);
        assertThat(accepted.status()).as(accepted.toString()).isEqualTo(202);
        return accepted.json().path("id").asText();
    }

    /** Registers a device of the tenant's user (201 or 200 asserted); answers its installation id. */
    protected String register(String installationId, Map<String, Object> device) {
        Api.Response r = api.put("/v1/devices/" + installationId, tenant.userToken(), device);
        assertThat(r.status()).as(r.toString()).isIn(200, 201);
        return installationId;
    }

    /** Each delivery of a notification's status by installation id; fails on a second one for an installation. */
    protected static Map<String, JsonNode> byInstallation(JsonNode status) {
        Map<String, JsonNode> found = new HashMap<>();
        for (JsonNode d : status.path("deliveries").path("items")) {
            String installation = d.path("installationId").asText();
            assertThat(found.put(installation, d)).as("a second delivery for " + installation).isNull();
        }
        return found;
    }

    /** The messages the FCM endpoint received for this token. */
    protected List<FakeFcm.Send> fcmSendsTo(String token) {
        return fcm.sends().stream().filter(s -> token.equals(s.message().path("token").asText())).toList();
    }

    /** The notification (with its first 100 deliveries) once it is {@code done}, within 20 s. */
    protected JsonNode awaitDone(String id) {
        JsonNode[] last = new JsonNode[1];
        await().atMost(Duration.ofSeconds(20)).untilAsserted(() -> {
            last[0] = api.get("/v1/notifications/" + id + "?limit=100", tenant.key()).json();
            assertThat(last[0].path("status").asText()).as(last[0].toString()).isEqualTo("done");
        });
        return last[0];
    }
}
