package dev.herald.support;

import com.fasterxml.jackson.databind.JsonNode;

import java.security.KeyPairGenerator;
import java.security.SecureRandom;
import java.security.spec.ECGenParameterSpec;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;

import static org.assertj.core.api.Assertions.assertThat;

/** Apps, keys, users and tokens as a test needs them, made through the public API. */
public final class Fixtures {

    /** The admin key application-test.yml configures. */
    public static final String ADMIN_KEY = "hk_admin_test_0123456789abcdefghijklmnopqrstuvwxyz";
    private static final SecureRandom RANDOM = new SecureRandom();

    private final Api api;

    public Fixtures(Api api) {
        this.api = api;
    }

    public static String unique(String prefix) {
        return prefix + "-" + UUID.randomUUID().toString().substring(0, 8);
    }

    /** Creates an app with only an id and a name; answers its id. */
    public String app() {
        String id = unique("app");
        Api.Response created = api.post("/v1/apps", ADMIN_KEY, Map.of("id", id, "name", "Test " + id));
        assertThat(created.status()).as(created.toString()).isEqualTo(201);
        return id;
    }

    public String key(String appId, String mode, String... scopes) {
        Api.Response created = api.post("/v1/apps/" + appId + "/keys", ADMIN_KEY,
                Map.of("name", "test", "mode", mode, "scopes", List.of(scopes)));
        assertThat(created.status()).as(created.toString()).isEqualTo(201);
        return created.json().path("key").asText();
    }

    public String userToken(String appKey, String userId) {
        Api.Response minted = api.post("/v1/users/" + userId + "/tokens", appKey, Map.of());
        assertThat(minted.status()).as(minted.toString()).isEqualTo(201);
        return minted.json().path("token").asText();
    }

    /** A fresh app, a key on it with every scope, and a token for a fresh user. */
    public Tenant tenant() {
        String app = app();
        String key = key(app, "live", "send", "calls", "users", "admin");
        String user = unique("user");
        return new Tenant(app, key, user, userToken(key, user));
    }

    public record Tenant(String app, String key, String userId, String userToken) {
    }

    public static String apnsToken() {
        byte[] bytes = new byte[32];
        RANDOM.nextBytes(bytes);
        return HexFormat.of().formatHex(bytes);
    }

    public static String fcmToken() {
        byte[] bytes = new byte[100];
        RANDOM.nextBytes(bytes);
        return "f" + Base64.getUrlEncoder().withoutPadding().encodeToString(bytes).replace('_', ':');
    }

    public static Map<String, Object> iosDevice(String app, String token) {
        Map<String, Object> body = new LinkedHashMap<>();
        body.put("app", app);
        body.put("platform", "ios");
        body.put("pushToken", token);
        return body;
    }

    public static Map<String, Object> androidDevice(String app, String token) {
        Map<String, Object> body = new LinkedHashMap<>();
        body.put("app", app);
        body.put("platform", "android");
        body.put("pushToken", token);
        return body;
    }

    /** A .p8 as Apple issues it: a PKCS#8 EC P-256 private key in PEM. */
    public static String p8() {
        try {
            KeyPairGenerator generator = KeyPairGenerator.getInstance("EC");
            generator.initialize(new ECGenParameterSpec("secp256r1"));
            return pem("PRIVATE KEY", generator.generateKeyPair().getPrivate().getEncoded());
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }

    /** A Google service-account JSON with a real RSA key and the given token endpoint. */
    public static Map<String, Object> serviceAccount(String projectId, String tokenUri) {
        try {
            KeyPairGenerator generator = KeyPairGenerator.getInstance("RSA");
            generator.initialize(2048);
            Map<String, Object> account = new LinkedHashMap<>();
            account.put("type", "service_account");
            account.put("project_id", projectId);
            account.put("private_key_id", "0123456789abcdef");
            account.put("private_key", pem("PRIVATE KEY", generator.generateKeyPair().getPrivate().getEncoded()));
            account.put("client_email", "herald@" + projectId + ".iam.gserviceaccount.com");
            account.put("client_id", "1234567890");
            account.put("token_uri", tokenUri);
            return account;
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }

    public static String pem(String type, byte[] der) {
        String base64 = Base64.getMimeEncoder(64, "\n".getBytes()).encodeToString(der);
        return "-----BEGIN " + type + "-----\n" + base64 + "\n-----END " + type + "-----\n";
    }

    public static List<String> fields(JsonNode problem) {
        List<String> fields = new ArrayList<>();
        problem.path("errors").forEach(e -> fields.add(e.path("field").asText()));
        return fields;
    }

    /** An HS256 user token as an identity provider (or an attacker) would sign it. */
    public static String jwt(String secret, String subject, String audience, java.time.Instant expires) {
        try {
            com.nimbusds.jwt.JWTClaimsSet claims = new com.nimbusds.jwt.JWTClaimsSet.Builder().subject(subject)
                    .audience(audience).issueTime(new java.util.Date()).expirationTime(java.util.Date.from(expires)).build();
            com.nimbusds.jwt.SignedJWT jwt = new com.nimbusds.jwt.SignedJWT(
                    new com.nimbusds.jose.JWSHeader(com.nimbusds.jose.JWSAlgorithm.HS256), claims);
            jwt.sign(new com.nimbusds.jose.crypto.MACSigner(secret.getBytes(java.nio.charset.StandardCharsets.UTF_8)));
            return jwt.serialize();
        } catch (com.nimbusds.jose.JOSEException e) {
            throw new IllegalStateException(e);
        }
    }

    /** The apns-id Herald gives a notification's push to an installation (a name-based UUID, the same on every try). */
    public static String apnsId(String notificationId, String installationId) {
        return UUID.nameUUIDFromBytes((notificationId + "/" + installationId)
                .getBytes(java.nio.charset.StandardCharsets.UTF_8)).toString();
    }
}
