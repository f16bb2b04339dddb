package dev.herald.email;

import com.fasterxml.jackson.databind.JsonNode;
import com.icegreen.greenmail.util.GreenMail;
import com.icegreen.greenmail.util.GreenMailUtil;
import com.icegreen.greenmail.util.ServerSetup;
import dev.herald.support.Api;
import dev.herald.support.Fixtures;
import dev.herald.support.HeraldTest;
import dev.herald.support.MockApns;
import io.micronaut.test.extensions.junit5.annotation.MicronautTest;
import io.micronaut.test.support.TestPropertyProvider;
import jakarta.mail.internet.MimeMessage;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;

import java.net.ServerSocket;
import java.time.Duration;
import java.time.Instant;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static dev.herald.support.Fixtures.apnsToken;
import static dev.herald.support.Fixtures.iosDevice;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/**
 * Step 4, email, against a real SMTP server (GreenMail): sent in the user's locale, as HTML and text,
 * only when no push reached a gateway; retried while the SMTP server is down.
 */
@MicronautTest(transactional = false)
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class EmailTest extends HeraldTest implements TestPropertyProvider {

    private static final String TEAM = "TEAM123456";
    private static final String KEY_ID = "KEY1234567";
    private static final Duration DEADLINE = Duration.ofSeconds(30);

    private final MockApns apns = MockApns.create();
    private final String p8 = Fixtures.p8();
    private final int smtpPort = freePort();
    private GreenMail smtp = startSmtp();
    private Fixtures.Tenant tenant;

    private static int freePort() {
        try (ServerSocket s = new ServerSocket(0)) {
            return s.getLocalPort();
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }

    private GreenMail startSmtp() {
        GreenMail mail = new GreenMail(new ServerSetup(smtpPort, "127.0.0.1", ServerSetup.PROTOCOL_SMTP));
        mail.start();
        return mail;
    }

    @Override
    public Map<String, String> getProperties() {
        apns.trust(TEAM, KEY_ID, p8);
        return Map.of(
                "herald.apns.host", "127.0.0.1",
                "herald.apns.port", Integer.toString(apns.port()),
                "herald.apns.trusted-cert", apns.certificatePath().toString(),
                "herald.delivery.poll", "100ms",
                "herald.email.poll", "100ms",
                "smtp.host", "127.0.0.1",
                "smtp.port", Integer.toString(smtpPort));
    }

    @AfterAll
    void closeServers() {
        apns.close();
        smtp.stop();
    }

    @BeforeEach
    void tenantWithApnsAndEmail() {
        tenant = fixtures.tenant();
        Map<String, Object> apnsBlock = Map.of("teamId", TEAM, "keyId", KEY_ID, "privateKey", p8,
                "bundleId", "com.example.herald", "environment", "sandbox");
        Api.Response patched = api.patch("/v1/apps/" + tenant.app(), Fixtures.ADMIN_KEY,
                Map.of("apns", apnsBlock, "email", Map.of("from", "noreply@example.com")));
        assertThat(patched.status()).as(patched.toString()).isEqualTo(200);
    }

    private String address() {
        return tenant.userId().toLowerCase() + "@example.com";
    }

    private void preferences(Map<String, Object> prefs) {
        Api.Response r = api.put("/v1/preferences", tenant.userToken(), prefs);
        assertThat(r.status()).as(r.toString()).isEqualTo(200);
    }

    private String send(Map<String, Object> body) {
        Api.Response accepted = api.post("/v1/notifications", tenant.key(), body);
        assertThat(accepted.status()).as(accepted.toString()).isEqualTo(202);
        return accepted.json().path("id").asText();
    }

    private JsonNode emailDelivery(String id, String status) {
        JsonNode[] found = new JsonNode[1];
        await().atMost(DEADLINE).untilAsserted(() -> {
            JsonNode n = api.get("/v1/notifications/" + id + "?limit=100", tenant.key()).json();
            for (JsonNode d : n.path("deliveries").path("items")) {
                if ("email".equals(d.path("channel").asText())) {
                    found[0] = d;
                }
            }
            assertThat(found[0]).as(n.toString()).isNotNull();
            assertThat(found[0].path("status").asText()).as(n.toString()).isEqualTo(status);
        });
        return found[0];
    }

    private List<MimeMessage> mailTo(String address) {
        return Arrays.stream(smtp.getReceivedMessages()).filter(m -> {
            try {
                return Arrays.stream(m.getAllRecipients()).anyMatch(a -> a.toString().equals(address));
            } catch (Exception e) {
                throw new IllegalStateException(e);
            }
        }).toList();
    }

    private Map<String, Object> notification() {
        Map<String, Object> body = new LinkedHashMap<>();
        body.put("to", Map.of("users", List.of(tenant.userId())));
        body.put("title", Map.of("en", "Your invoice", "fr", "Votre facture <n°7>"));
        body.put("body", Map.of("en", "Due Friday", "fr", "À payer vendredi"));
        body.put("link", "https://example.com/invoices/7?a=1&b=2");
        return body;
    }

    @Test
    void userWithoutDevicesGetsAnEmailInTheirLocale() throws Exception {
        preferences(Map.of("email", address(), "locale", "fr"));

        String id = send(notification());

        emailDelivery(id, "sent");
        await().atMost(DEADLINE).until(() -> mailTo(address()).size() == 1);
        MimeMessage mail = mailTo(address()).get(0);
        assertThat(mail.getSubject()).isEqualTo("Votre facture <n°7>");
        assertThat(mail.getFrom()[0].toString()).isEqualTo("noreply@example.com");
        String raw = GreenMailUtil.getWholeMessage(mail);
        assertThat(raw).contains("multipart/alternative").contains("text/plain").contains("text/html");
        String text = GreenMailUtil.getBody(mail);
        assertThat(decoded(text)).contains("payer vendredi").contains("https://example.com/invoices/7?a=1&b=2")
                .contains("&lt;n°7&gt;").contains("href=\"https://example.com/invoices/7?a=1&amp;b=2\"");
    }

    @Test
    void aTitleCarryingHeadersCannotAddRecipientsOrHeaders() throws Exception {
        preferences(Map.of("email", address()));
        Map<String, Object> body = new LinkedHashMap<>();
        body.put("to", Map.of("users", List.of(tenant.userId())));
        body.put("title", "Invoice\r\nBcc: eve@example.com\r\nX-Injected: 1\n\nbody");
        String id = send(body);

        emailDelivery(id, "sent");
        await().atMost(DEADLINE).until(() -> mailTo(address()).size() == 1);
        MimeMessage mail = mailTo(address()).get(0);
        assertThat(mail.getSubject()).isEqualTo("Invoice Bcc: eve@example.com X-Injected: 1 body");
        assertThat(mail.getHeader("X-Injected")).isNull();
        assertThat(mail.getAllRecipients()).extracting(Object::toString).containsExactly(address());
        assertThat(mailTo("eve@example.com")).isEmpty();
    }

    /** The message body with quoted-printable soft breaks and escapes undone, for reading. */
    private static String decoded(String body) throws Exception {
        return new String(jakarta.mail.internet.MimeUtility.decode(
                new java.io.ByteArrayInputStream(body.getBytes(java.nio.charset.StandardCharsets.UTF_8)), "quoted-printable")
                .readAllBytes(), java.nio.charset.StandardCharsets.UTF_8);
    }

    @Test
    void noEmailWhenAPushReachedTheGatewayOneWhenEveryPushFailed() {
        preferences(Map.of("email", address()));
        String token = apnsToken();
        assertThat(api.put("/v1/devices/iphone-" + token.substring(0, 8), tenant.userToken(),
                iosDevice(tenant.app(), token)).status()).isIn(200, 201);

        JsonNode pushed = emailDelivery(send(notification()), "suppressed");
        assertThat(pushed.path("reason").asText()).isEqualTo("pushed");
        assertThat(mailTo(address())).isEmpty();

        apns.answer(token, MockApns.Answer.unregistered(Instant.now().plusSeconds(5)));
        emailDelivery(send(notification()), "sent");
        await().atMost(DEADLINE).until(() -> mailTo(address()).size() == 1);
    }

    @Test
    void preferencesAndMissingAddressesSayWhy() {
        preferences(Map.of("email", address(), "channels", Map.of("email", false)));
        assertThat(emailDelivery(send(notification()), "suppressed").path("reason").asText()).isEqualTo("preference");

        preferences(Map.of());
        assertThat(emailDelivery(send(notification()), "suppressed").path("reason").asText()).isEqualTo("not_configured");
        assertThat(mailTo(address())).isEmpty();
    }

    @Test
    void smtpServerDownThenBackGetsTheEmailDelivered() {
        preferences(Map.of("email", address()));
        smtp.stop();
        String id;
        try {
            id = send(notification());
            JsonNode waiting = emailDelivery(id, "queued");
            await().atMost(DEADLINE).untilAsserted(() -> assertThat(emailDelivery(id, "queued").path("reason").asText())
                    .isEqualTo("connection"));
            assertThat(waiting.path("attempts").asInt()).isGreaterThanOrEqualTo(0);
        } finally {
            smtp = startSmtp();
        }
        emailDelivery(id, "sent");
        await().atMost(DEADLINE).until(() -> mailTo(address()).size() == 1);
    }
}
