package dev.herald.fcm;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.google.api.client.json.JsonFactory;
import com.google.firebase.ErrorCode;
import com.google.firebase.messaging.MessagingErrorCode;
import com.google.firebase.messaging.internal.MessagingServiceErrorResponse;
import dev.herald.delivery.PushResult;
import org.apache.hc.client5.http.async.methods.SimpleHttpResponse;
import org.apache.hc.core5.http.Header;

import java.io.IOException;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.ZonedDateTime;
import java.time.format.DateTimeFormatter;
import java.time.format.DateTimeParseException;

/**
 * What an FCM HTTP v1 answer means for one push. FCM's {@code errorCode} is read exactly as firebase-admin reads it
 * into {@code FirebaseMessagingException.getMessagingErrorCode()}, then:
 * <ul>
 *   <li>{@code UNREGISTERED}, {@code SENDER_ID_MISMATCH}: {@link PushResult.TokenInvalid} (FCM gives no time);</li>
 *   <li>{@code UNAVAILABLE}, {@code INTERNAL}, {@code QUOTA_EXCEEDED}: {@link PushResult.Retry}, not before the
 *       response's {@code Retry-After} when it has one;</li>
 *   <li>{@code INVALID_ARGUMENT}, {@code THIRD_PARTY_AUTH_ERROR} and any other code: {@link PushResult.Rejected};</li>
 *   <li>an error without an FCM code (a proxy's 502, a bare 401 for a stale access token): its platform
 *       {@link ErrorCode}, a retry for 401, 408, 429 and 5xx, else a rejection;</li>
 *   <li>no response at all: {@code Retry("connection")}.</li>
 * </ul>
 * Reasons are enum names, so they are bounded metric tags. Thread-safe.
 *
 * @see <a href="https://firebase.google.com/docs/reference/fcm/rest/v1/ErrorCode">FCM v1 error codes</a>
 */
final class FcmOutcomes {

    static final String CONNECTION = "connection";

    private static final com.fasterxml.jackson.core.JsonFactory JACKSON = new com.fasterxml.jackson.core.JsonFactory();

    private final JsonFactory json;
    private final Clock clock;

    FcmOutcomes(JsonFactory json, Clock clock) {
        this.json = json;
        this.clock = clock;
    }

    PushResult of(SimpleHttpResponse response) {
        int status = response.getCode();
        if (status >= 200 && status < 300) {
            return new PushResult.Accepted(messageName(response.getBodyBytes()));
        }
        MessagingServiceErrorResponse error = parse(response, MessagingServiceErrorResponse.class);
        MessagingErrorCode code = error == null ? null : error.getMessagingErrorCode();
        if (code != null) {
            return switch (code) {
                case UNREGISTERED, SENDER_ID_MISMATCH -> new PushResult.TokenInvalid(code.name(), null);
                case UNAVAILABLE, INTERNAL, QUOTA_EXCEEDED -> new PushResult.Retry(code.name(), retryAfter(response));
                default -> new PushResult.Rejected(code.name());
            };
        }
        String platform = platformCode(status, error == null ? null : error.getStatus()).name();
        boolean passing = status == 401 || status == 408 || status == 429 || status >= 500;
        return passing ? new PushResult.Retry(platform, retryAfter(response)) : new PushResult.Rejected(platform);
    }

    /** No response came: the connection was refused, lost or timed out, or the access token could not be had. */
    PushResult failure() {
        return new PushResult.Retry(CONNECTION, null);
    }

    /** {@code Retry-After} as delay-seconds or an HTTP-date; {@code null} when absent or unreadable. */
    private Duration retryAfter(SimpleHttpResponse response) {
        Header header = response.getFirstHeader("Retry-After");
        if (header == null || header.getValue() == null) {
            return null;
        }
        String value = header.getValue().strip();
        try {
            return Duration.ofSeconds(Math.max(0, Long.parseLong(value)));
        } catch (NumberFormatException notSeconds) {
            try {
                Instant at = ZonedDateTime.parse(value, DateTimeFormatter.RFC_1123_DATE_TIME).toInstant();
                Duration left = Duration.between(clock.instant(), at);
                return left.isNegative() ? Duration.ZERO : left;
            } catch (DateTimeParseException notDate) {
                return null;
            }
        }
    }

    /** As firebase-admin derives it: the body's canonical status when it names one, else from the HTTP status. */
    private static ErrorCode platformCode(int status, String statusName) {
        if (statusName != null) {
            for (ErrorCode code : ErrorCode.values()) {
                if (code.name().equals(statusName)) {
                    return code;
                }
            }
        }
        return switch (status) {
            case 400 -> ErrorCode.INVALID_ARGUMENT;
            case 401 -> ErrorCode.UNAUTHENTICATED;
            case 403 -> ErrorCode.PERMISSION_DENIED;
            case 404 -> ErrorCode.NOT_FOUND;
            case 409 -> ErrorCode.CONFLICT;
            case 412 -> ErrorCode.FAILED_PRECONDITION;
            case 429 -> ErrorCode.RESOURCE_EXHAUSTED;
            case 500 -> ErrorCode.INTERNAL;
            case 503 -> ErrorCode.UNAVAILABLE;
            case 504 -> ErrorCode.DEADLINE_EXCEEDED;
            default -> ErrorCode.UNKNOWN;
        };
    }

    /** The {@code name} of FCM's {@code {"name": "projects/p/messages/id"}}; {@code null} when there is none. */
    private static String messageName(byte[] body) {
        if (body == null) {
            return null;
        }
        try (JsonParser parser = JACKSON.createParser(body)) {
            if (parser.nextToken() != JsonToken.START_OBJECT) {
                return null;
            }
            for (JsonToken token = parser.nextToken(); token == JsonToken.FIELD_NAME; token = parser.nextToken()) {
                if ("name".equals(parser.currentName())) {
                    return parser.nextTextValue();
                }
                parser.nextToken();
                parser.skipChildren();
            }
        } catch (IOException notJson) {
            // accepted all the same
        }
        return null;
    }

    /** The body parsed as firebase-admin parses it; {@code null} when it is not JSON (a proxy's HTML page). */
    private <T> T parse(SimpleHttpResponse response, Class<T> type) {
        String body = response.getBodyText();
        if (body == null || body.isEmpty()) {
            return null;
        }
        try {
            return json.createJsonParser(body).parseAndClose(type);
        } catch (Exception notJson) {
            return null;
        }
    }
}
