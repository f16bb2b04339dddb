package dev.herald.auth;

import com.nimbusds.jwt.JWTClaimsSet;
import com.nimbusds.jwt.PlainJWT;
import dev.herald.support.Api;
import dev.herald.support.Fixtures;
import dev.herald.support.HeraldTest;
import io.micronaut.test.extensions.junit5.annotation.MicronautTest;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.time.Instant;
import java.util.Date;
import java.util.Map;

import static dev.herald.support.Fixtures.ADMIN_KEY;
import static dev.herald.support.Problems.assertInvalid;
import static dev.herald.support.Problems.assertProblem;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;
import static org.awaitility.Awaitility.await;

@MicronautTest(transactional = false)
class UserTokenTest extends HeraldTest {

    /** application-test.yml: HERALD_JWT_SECRET, and the secret of the stand-in identity provider. */
    private static final String HERALD_SECRET = "herald-test-jwt-secret-0123456789-0123456789-abcdef";
    private static final String IDP_SECRET = "identity-provider-secret-0123456789-abcdefghijkl";

    @Test
    void mintsATokenThatReachesTheUsersDevices() {
        String app = fixtures.app();
        String key = fixtures.key(app, "live", "users");
        Instant before = Instant.now();

        Api.Response minted = api.post("/v1/users/alice-" + app + "/tokens", key, Map.of("ttlSeconds", 600));

        assertThat(minted.status()).isEqualTo(201);
        Instant expiresAt = Instant.parse(minted.json().path("expiresAt").asText());
        assertThat(expiresAt).isCloseTo(before.plusSeconds(600), within(Duration.ofSeconds(5)));
        Api.Response devices = api.get("/v1/devices", minted.json().path("token").asText());
        assertThat(devices.status()).isEqualTo(200);
        assertThat(devices.json().path("items")).isEmpty();
    }

    @Test
    void defaultsToAnHour() {
        String key = fixtures.key(fixtures.app(), "live", "users");
        Api.Response withoutBody = api.send("POST", "/v1/users/bob/tokens", key, null, null);
        assertThat(withoutBody.status()).as(withoutBody.toString()).isEqualTo(201);
        assertThat(Instant.parse(withoutBody.json().path("expiresAt").asText()))
                .isCloseTo(Instant.now().plusSeconds(3600), within(Duration.ofSeconds(5)));
    }

    @Test
    void validatesTheRequest() {
        String key = fixtures.key(fixtures.app(), "live", "users");
        assertInvalid(api.post("/v1/users/bob/tokens", key, Map.of("ttlSeconds", 0)), "ttlSeconds");
        assertInvalid(api.post("/v1/users/bob/tokens", key, Map.of("ttlSeconds", 86401)), "ttlSeconds");
        assertInvalid(api.post("/v1/users/bob/tokens", key, Map.of("ttlSeconds", "long")), "ttlSeconds");
        assertInvalid(api.post("/v1/users/bob/tokens", key, Map.of("ttl", 5)), "ttl");
        assertInvalid(api.post("/v1/users/" + "u".repeat(129) + "/tokens", key, Map.of()), "userId");
        assertInvalid(api.post("/v1/users/bad%01id/tokens", key, Map.of()), "userId");
        assertInvalid(api.post("/v1/users/a%2Fb/tokens", key, Map.of()), "userId");
    }

    @Test
    void onlyAnAppKeyWithTheUsersScopeMints() {
        Fixtures.Tenant tenant = fixtures.tenant();
        String sendOnly = fixtures.key(tenant.app(), "live", "send");
        assertProblem(api.post("/v1/users/bob/tokens", sendOnly, Map.of()), 403);
        assertProblem(api.post("/v1/users/bob/tokens", ADMIN_KEY, Map.of()), 403);
        assertProblem(api.post("/v1/users/bob/tokens", tenant.userToken(), Map.of()), 403);
        assertProblem(api.post("/v1/users/bob/tokens", null, Map.of()), 401);
        assertProblem(api.post("/v1/users/bob/tokens", "hk_live_doesnotexist", Map.of()), 401);
    }

    @Test
    void aTokenStopsWorkingWhenItExpiresEvenAfterItWasUsed() {
        String key = fixtures.key(fixtures.app(), "live", "users");
        String token = api.post("/v1/users/short-lived/tokens", key, Map.of("ttlSeconds", 2)).json().path("token").asText();
        assertThat(api.get("/v1/devices", token).status()).isEqualTo(200);
        assertThat(api.get("/v1/devices", token).status()).as("used again while valid").isEqualTo(200);

        await().atMost(Duration.ofSeconds(6)).pollInterval(Duration.ofMillis(100))
                .until(() -> api.get("/v1/devices", token).status() == 401);
    }

    @Test
    void acceptsTokensOfTheDeploymentsIdentityProvider() throws Exception {
        String token = Fixtures.jwt(IDP_SECRET, "idp-user-" + Fixtures.unique("u"), "herald", Instant.now().plusSeconds(300));
        assertThat(api.get("/v1/devices", token).status()).isEqualTo(200);
    }

    @Test
    void refusesExpiredForgedAndForeignTokens() throws Exception {
        Instant later = Instant.now().plusSeconds(300);
        assertThat(api.get("/v1/devices", Fixtures.jwt(HERALD_SECRET, "carol", "herald", later)).status()).isEqualTo(200);

        String expired = Fixtures.jwt(HERALD_SECRET, "carol", "herald", Instant.now().minusSeconds(120));
        String wrongAudience = Fixtures.jwt(HERALD_SECRET, "carol", "someone-else", later);
        String forged = Fixtures.jwt("an-attackers-secret-0123456789-0123456789-abcd", "carol", "herald", later);
        String unsigned = new PlainJWT(new JWTClaimsSet.Builder().subject("carol").audience("herald")
                .expirationTime(Date.from(later)).build()).serialize();
        String tampered = Fixtures.jwt(HERALD_SECRET, "carol", "herald", later);
        String[] parts = tampered.split("\\.");
        String otherSubject = Fixtures.jwt(HERALD_SECRET, "mallory", "herald", later).split("\\.")[1];
        tampered = parts[0] + "." + otherSubject + "." + parts[2];

        for (String token : new String[]{expired, wrongAudience, forged, unsigned, tampered}) {
            Api.Response response = api.get("/v1/devices", token);
            assertProblem(response, 401);
            assertThat(response.headers().firstValue("WWW-Authenticate")).hasValue("Bearer");
        }
    }
}
