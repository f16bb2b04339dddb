package dev.herald.api;

import dev.herald.support.Api;
import dev.herald.support.Fixtures;
import dev.herald.support.HeraldTest;
import io.micronaut.test.extensions.junit5.annotation.MicronautTest;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.charset.StandardCharsets;

import static dev.herald.support.Fixtures.ADMIN_KEY;
import static dev.herald.support.Problems.assertProblem;
import static org.assertj.core.api.Assertions.assertThat;

/** Every error is a problem document, never a 500 and never internals, whatever a client sends. */
@MicronautTest(transactional = false)
class ErrorsTest extends HeraldTest {

    private Fixtures.Tenant tenant;

    @BeforeEach
    void tenant() {
        tenant = fixtures.tenant();
    }

    @ParameterizedTest
    @ValueSource(strings = {"{", "{\"app\": }", "[1,2", "nul", "{\"a\":1}{\"b\":2}", "{\"app\":\"x\",\"app\":\"y\"}", "\"just a string\"", "42", "[]"})
    void malformedOrMisshapenJsonIsA400(String body) {
        Api.Response response = api.send("PUT", "/v1/devices/x1", tenant.userToken(), "application/json", body);
        assertProblem(response, 400);
    }

    @Test
    void invalidUtf8IsA400() {
        byte[] body = "{\"app\":\"\u00ff\"}".getBytes(StandardCharsets.ISO_8859_1);
        assertProblem(api.sendBytes("PUT", "/v1/devices/x1", tenant.userToken(), "application/json", body), 400);
    }

    @Test
    void anEmptyBodyIsA400() {
        assertProblem(api.send("PUT", "/v1/devices/x1", tenant.userToken(), "application/json", ""), 400);
        assertProblem(api.send("POST", "/v1/apps", ADMIN_KEY, "application/json", ""), 400);
    }

    @Test
    void aBodyOverOneMebibyteIsA413() {
        String big = "{\"app\":\"" + "a".repeat(1024 * 1024 + 10) + "\"}";
        assertProblem(api.send("POST", "/v1/apps", ADMIN_KEY, "application/json", big), 413);
    }

    @Test
    void anotherMediaTypeIsA415() {
        assertProblem(api.send("POST", "/v1/apps", ADMIN_KEY, "text/plain", "{}"), 415);
    }

    @Test
    void anUnknownRouteIsA404AndAWrongMethodA405() {
        assertProblem(api.get("/v1/nothing-here", ADMIN_KEY), 404);
        assertProblem(api.send("DELETE", "/v1/apps", ADMIN_KEY, null, null), 405);
    }

    @Test
    void deepNestingIsA400NotACrash() {
        String deep = "{\"app\":" + "[".repeat(5000) + "]".repeat(5000) + "}";
        Api.Response response = api.send("PUT", "/v1/devices/x1", tenant.userToken(), "application/json", deep);
        assertProblem(response, 400);
    }

    @Test
    void controlCharactersInAStringAreNamed() {
        String body = "{\"app\":\"" + tenant.app() + "\",\"platform\":\"android\",\"pushToken\":\"abc\\u0000def\"}";
        Api.Response response = api.send("PUT", "/v1/devices/x1", tenant.userToken(), "application/json", body);
        assertThat(Fixtures.fields(assertProblem(response, 400))).contains("pushToken");
    }
}
