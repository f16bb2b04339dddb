package dev.herald.devices;

import com.fasterxml.jackson.databind.JsonNode;
import dev.herald.support.Api;
import dev.herald.support.Fixtures;
import dev.herald.support.HeraldTest;
import dev.herald.support.RawHttp;
import dev.herald.support.RawHttp.Raw;
import io.micronaut.test.extensions.junit5.annotation.MicronautTest;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.io.InputStream;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeSet;

import static dev.herald.support.Fixtures.androidDevice;
import static dev.herald.support.Fixtures.apnsToken;
import static dev.herald.support.Fixtures.fcmToken;
import static dev.herald.support.Fixtures.iosDevice;
import static dev.herald.support.RawHttp.readResponses;
import static dev.herald.support.RawHttp.request;
import static org.assertj.core.api.Assertions.assertThat;

/**
 * Registrations served straight from Netty ({@link dev.herald.api.DirectRequests}) answer exactly as the
 * controller does, leave everything else to it, and keep pipelined answers in order. A user token's
 * first request always goes through Micronaut (which verifies the token); later ones are served directly.
 */
@MicronautTest(transactional = false)
class DirectRegistrationTest extends HeraldTest {

    private static final String DIRECT = "herald_devices_registration_direct_total";

    private Fixtures.Tenant tenant;

    @BeforeEach
    void tenant() {
        tenant = fixtures.tenant();
    }

    private double direct() {
        return Api.metric(api.get("/metrics", null).body(), DIRECT).orElse(0);
    }

    @Test
    void aDirectAnswerIsTheControllersAnswer() {
        String users = fixtures.key(tenant.app(), "live", "users");
        String token = fixtures.userToken(users, Fixtures.unique("fresh"));
        String first = Fixtures.unique("first");
        String second = Fixtures.unique("second");
        Map<String, Object> body = iosDevice(tenant.app(), apnsToken());
        body.put("locale", "pt-BR");
        body.put("tags", List.of("b", "a"));
        double before = direct();

        Api.Response framework = api.put("/v1/devices/" + first, token, body);
        double afterFirst = direct();
        body.put("pushToken", apnsToken());
        Api.Response here = api.put("/v1/devices/" + second, token, body);

        assertThat(afterFirst).as("a token's first request is Micronaut's").isEqualTo(before);
        assertThat(direct()).as("the next is served directly").isEqualTo(before + 1);
        assertThat(here.status()).isEqualTo(framework.status()).isEqualTo(201);
        assertThat(headerNames(here)).isEqualTo(headerNames(framework)).contains("content-type", "content-length", "date");
        assertThat(here.contentType()).isEqualTo(framework.contentType());
        JsonNode mine = here.json();
        JsonNode theirs = framework.json();
        assertThat(fieldNames(mine)).containsExactlyElementsOf(fieldNames(theirs));
        for (String field : List.of("userId", "app", "platform", "voip", "locale", "timezone", "appVersion", "tags")) {
            assertThat(mine.path(field)).as(field).isEqualTo(theirs.path(field));
        }
        assertThat(mine.path("installationId").asText()).isEqualTo(second);
        assertThat(mine.path("tags")).extracting(JsonNode::asText).containsExactly("a", "b");

        body.put("locale", "es");
        Api.Response again = api.put("/v1/devices/" + first, token, body);
        assertThat(again.status()).isEqualTo(200);
        assertThat(direct()).isEqualTo(before + 2);
        assertThat(api.get("/v1/devices/" + first, token).json().path("locale").asText()).isEqualTo("es");
        assertThat(api.get("/v1/devices/" + second, token).status()).as("another installation stays").isEqualTo(200);
    }

    @Test
    void requestsItDeclinesGetTheContractsProblems() {
        api.put("/v1/devices/" + Fixtures.unique("warm"), tenant.userToken(), androidDevice(tenant.app(), fcmToken()));
        double before = direct();

        Map<String, Object> unknownField = androidDevice(tenant.app(), fcmToken());
        unknownField.put("colour", "red");
        Api.Response unknown = api.put("/v1/devices/" + Fixtures.unique("d"), tenant.userToken(), unknownField);
        Map<String, Object> badZone = androidDevice(tenant.app(), fcmToken());
        badZone.put("timezone", "Mars/Olympus");
        Api.Response zone = api.put("/v1/devices/" + Fixtures.unique("d"), tenant.userToken(), badZone);
        Api.Response noApp = api.put("/v1/devices/" + Fixtures.unique("d"), tenant.userToken(),
                androidDevice("no-such-app-" + Fixtures.unique("x"), fcmToken()));
        Api.Response longId = api.put("/v1/devices/" + "x".repeat(129), tenant.userToken(),
                androidDevice(tenant.app(), fcmToken()));
        Api.Response appKey = api.put("/v1/devices/" + Fixtures.unique("d"), tenant.key(),
                androidDevice(tenant.app(), fcmToken()));
        Api.Response forged = api.put("/v1/devices/" + Fixtures.unique("d"), tenant.userToken() + "x",
                androidDevice(tenant.app(), fcmToken()));

        assertThat(List.of(unknown, zone, noApp, longId)).allSatisfy(r -> {
            assertThat(r.status()).as(r.toString()).isEqualTo(400);
            assertThat(r.contentType()).startsWith("application/problem+json");
        });
        assertThat(Fixtures.fields(unknown.json())).containsExactly("colour");
        assertThat(Fixtures.fields(zone.json())).containsExactly("timezone");
        assertThat(Fixtures.fields(noApp.json())).containsExactly("app");
        assertThat(Fixtures.fields(longId.json())).containsExactly("installationId");
        assertThat(appKey.status()).isEqualTo(403);
        assertThat(forged.status()).isEqualTo(401);
        assertThat(direct()).as("none of them answered directly").isEqualTo(before);
    }

    /**
     * Requests sent at once on one connection: a registration served directly, then a list Micronaut
     * answers, a registration it declines and one more, all read while the first is stored.
     * The answers come back in the order asked, each the right one.
     */
    @Test
    void pipelinedRequestsAreAnsweredInOrder() throws Exception {
        String token = tenant.userToken();
        api.put("/v1/devices/" + Fixtures.unique("warm"), token, androidDevice(tenant.app(), fcmToken()));
        String a = Fixtures.unique("a");
        String b = Fixtures.unique("b");
        byte[] good = Api.JSON.writeValueAsBytes(androidDevice(tenant.app(), fcmToken()));
        Map<String, Object> unknown = androidDevice(tenant.app(), fcmToken());
        unknown.put("colour", "red");
        byte[] bad = Api.JSON.writeValueAsBytes(unknown);
        byte[] alsoGood = Api.JSON.writeValueAsBytes(iosDevice(tenant.app(), apnsToken()));
        double before = direct();

        List<Raw> answers = pipelined(
                request("PUT", "/v1/devices/" + a, token, good),
                request("GET", "/v1/devices", token, null),
                request("PUT", "/v1/devices/" + Fixtures.unique("c"), token, bad),
                request("PUT", "/v1/devices/" + b, token, alsoGood));

        // (a read pipelined behind a write Micronaut serves may run before that write commits: Micronaut
        // handles pipelined requests concurrently, answering in order; so b is read afterwards)
        assertThat(answers).extracting(Raw::status).containsExactly(201, 200, 400, 201);
        assertThat(Api.JSON.readTree(answers.get(0).body()).path("installationId").asText()).isEqualTo(a);
        assertThat(Api.JSON.readTree(answers.get(1).body()).path("items")).extracting(d -> d.path("installationId").asText())
                .contains(a);
        assertThat(answers.get(2).headers().get("content-type")).startsWith("application/problem+json");
        assertThat(Api.JSON.readTree(answers.get(3).body()).path("installationId").asText()).isEqualTo(b);
        assertThat(api.get("/v1/devices/" + b, token).json().path("platform").asText()).isEqualTo("ios");
        assertThat(direct()).as("the first, at least, was served directly").isGreaterThanOrEqualTo(before + 1);
    }

    /**
     * Registrations pipelined on a fresh connection are all served directly, one after the other, and
     * one the writer refuses (its app does not exist) is answered with the contract's problem there too,
     * without being tried a second time.
     */
    @Test
    void pipelinedRegistrationsAreServedOneAfterTheOther() throws Exception {
        String token = tenant.userToken();
        api.put("/v1/devices/" + Fixtures.unique("warm"), token, androidDevice(tenant.app(), fcmToken()));
        String a = Fixtures.unique("a");
        String b = Fixtures.unique("b");
        String c = Fixtures.unique("c");
        double before = direct();

        List<Raw> answers = pipelined(
                request("PUT", "/v1/devices/" + a, token, Api.JSON.writeValueAsBytes(androidDevice(tenant.app(), fcmToken()))),
                request("PUT", "/v1/devices/" + b, token, Api.JSON.writeValueAsBytes(iosDevice(tenant.app(), apnsToken()))),
                request("PUT", "/v1/devices/" + Fixtures.unique("d"), token,
                        Api.JSON.writeValueAsBytes(androidDevice("no-such-app-" + Fixtures.unique("x"), fcmToken()))),
                request("PUT", "/v1/devices/" + c, token, Api.JSON.writeValueAsBytes(androidDevice(tenant.app(), fcmToken()))));

        assertThat(answers).extracting(Raw::status).containsExactly(201, 201, 400, 201);
        assertThat(answers).extracting(r -> Api.JSON.readTree(r.body()).path("installationId").asText())
                .containsExactly(a, b, "", c);
        assertThat(answers.get(2).headers().get("content-type")).startsWith("application/problem+json");
        assertThat(Fixtures.fields(Api.JSON.readTree(answers.get(2).body()))).containsExactly("app");
        assertThat(direct()).as("the three stored, each served directly").isEqualTo(before + 3);
    }

    /** {@code Connection: close} is honoured: the answer says so and the connection ends after it. */
    @Test
    void aRegistrationAskingToCloseIsAnsweredThenClosed() throws Exception {
        String token = tenant.userToken();
        api.put("/v1/devices/" + Fixtures.unique("warm"), token, androidDevice(tenant.app(), fcmToken()));
        byte[] good = Api.JSON.writeValueAsBytes(androidDevice(tenant.app(), fcmToken()));
        double before = direct();
        try (Socket socket = new Socket(server.getHost(), server.getPort())) {
            socket.setSoTimeout(30_000);
            String head = "PUT /v1/devices/" + Fixtures.unique("bye") + " HTTP/1.1\r\nHost: herald\r\nConnection: close\r\n"
                    + "Authorization: Bearer " + token + "\r\nContent-Type: application/json\r\nContent-Length: "
                    + good.length + "\r\n\r\n";
            socket.getOutputStream().write(head.getBytes(StandardCharsets.US_ASCII));
            socket.getOutputStream().write(good);
            InputStream in = socket.getInputStream();
            List<Raw> answers = readResponses(in, 1);
            assertThat(answers.get(0).status()).isEqualTo(201);
            assertThat(answers.get(0).headers().get("connection")).isEqualToIgnoringCase("close");
            assertThat(in.read()).as("closed after the answer").isEqualTo(-1);
        }
        assertThat(direct()).isEqualTo(before + 1);
    }

    /** Sends {@code requests} at once on one new connection and reads their answers. */
    private List<Raw> pipelined(byte[]... requests) throws IOException {
        return RawHttp.pipelined(server.getHost(), server.getPort(), requests);
    }

    private static TreeSet<String> headerNames(Api.Response response) {
        TreeSet<String> names = new TreeSet<>();
        response.headers().map().keySet().forEach(n -> names.add(n.toLowerCase(Locale.ROOT)));
        return names;
    }

    private static List<String> fieldNames(JsonNode node) {
        List<String> names = new ArrayList<>();
        for (Iterator<String> it = node.fieldNames(); it.hasNext(); ) {
            names.add(it.next());
        }
        return names;
    }
}
