package dev.herald.fcm;

import com.google.firebase.internal.ApiClientUtils;
import dev.herald.delivery.PushResult;
import org.apache.hc.client5.http.async.methods.SimpleHttpResponse;
import org.apache.hc.core5.http.ContentType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneOffset;
import java.util.stream.Stream;

import static org.assertj.core.api.Assertions.assertThat;

/** The answers {@code FakeFcm} does not give: bare platform errors, odd bodies, HTTP-date {@code Retry-After}. */
class FcmOutcomesTest {

    private static final Instant NOW = Instant.parse("2030-01-02T03:04:05Z");
    private final FcmOutcomes outcomes = new FcmOutcomes(ApiClientUtils.getDefaultJsonFactory(), Clock.fixed(NOW, ZoneOffset.UTC));

    static Stream<Arguments> answers() {
        return Stream.of(
                Arguments.of(200, "{\"name\":\"projects/p/messages/1\"}", new PushResult.Accepted("projects/p/messages/1")),
                Arguments.of(200, "not json", new PushResult.Accepted(null)),
                Arguments.of(502, "<html>Bad Gateway</html>", new PushResult.Retry("UNKNOWN", null)),
                Arguments.of(503, "{\"error\":{\"code\":503,\"status\":\"UNAVAILABLE\"}}", new PushResult.Retry("UNAVAILABLE", null)),
                Arguments.of(401, "{\"error\":{\"code\":401,\"status\":\"UNAUTHENTICATED\"}}", new PushResult.Retry("UNAUTHENTICATED", null)),
                Arguments.of(404, "{\"error\":{\"code\":404,\"status\":\"NOT_FOUND\"}}", new PushResult.Rejected("NOT_FOUND")),
                Arguments.of(400, fcmError(400, "INVALID_ARGUMENT", "APNS_AUTH_ERROR"), new PushResult.Rejected("THIRD_PARTY_AUTH_ERROR")),
                Arguments.of(404, fcmError(404, "NOT_FOUND", "UNREGISTERED"), new PushResult.TokenInvalid("UNREGISTERED", null)));
    }

    @ParameterizedTest
    @MethodSource("answers")
    void mapsTheAnswer(int status, String body, PushResult expected) {
        assertThat(outcomes.of(response(status, body))).isEqualTo(expected);
    }

    @Test
    void readsRetryAfterAsSecondsOrAnHttpDate() {
        SimpleHttpResponse seconds = response(429, fcmError(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED"));
        seconds.addHeader("Retry-After", "120");
        SimpleHttpResponse date = response(503, fcmError(503, "UNAVAILABLE", "UNAVAILABLE"));
        date.addHeader("Retry-After", "Wed, 02 Jan 2030 03:05:05 GMT");
        SimpleHttpResponse junk = response(503, fcmError(503, "UNAVAILABLE", "UNAVAILABLE"));
        junk.addHeader("Retry-After", "soon");

        assertThat(outcomes.of(seconds)).isEqualTo(new PushResult.Retry("QUOTA_EXCEEDED", Duration.ofSeconds(120)));
        assertThat(outcomes.of(date)).isEqualTo(new PushResult.Retry("UNAVAILABLE", Duration.ofSeconds(60)));
        assertThat(outcomes.of(junk)).isEqualTo(new PushResult.Retry("UNAVAILABLE", null));
    }

    private static SimpleHttpResponse response(int status, String body) {
        SimpleHttpResponse response = new SimpleHttpResponse(status);
        response.setBody(body, ContentType.APPLICATION_JSON);
        return response;
    }

    private static String fcmError(int code, String status, String errorCode) {
        return "{\"error\":{\"code\":" + code + ",\"status\":\"" + status + "\",\"details\":[{\"@type\":"
                + "\"type.googleapis.com/google.firebase.fcm.v1.FcmError\",\"errorCode\":\"" + errorCode + "\"}]}}";
    }
}
