package dev.herald.support;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpHeaders;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;

/** A client of Herald's HTTP API over a real connection, answering status, headers and body as a client sees them. */
public final class Api {

    public static final ObjectMapper JSON = new ObjectMapper();
    private static final HttpClient CLIENT = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
            .connectTimeout(Duration.ofSeconds(5)).build();

    private final URI base;

    public Api(URI base) {
        this.base = base;
    }

    public record Response(int status, HttpHeaders headers, String body) {
        public JsonNode json() {
            try {
                return JSON.readTree(body);
            } catch (IOException e) {
                throw new UncheckedIOException("not JSON: " + body, e);
            }
        }

        public String contentType() {
            return headers.firstValue("content-type").orElse("");
        }

        @Override
        public String toString() {
            return status + " " + body;
        }
    }

    /** One sample of a Prometheus exposition ({@code name} or {@code name{labels}}), empty when it is not there. */
    public static java.util.OptionalDouble metric(String exposition, String series) {
        return exposition.lines().filter(line -> line.startsWith(series + " "))
                .mapToDouble(line -> Double.parseDouble(line.substring(series.length() + 1).trim())).findFirst();
    }

    public Response get(String path, String bearer) {
        return send("GET", path, bearer, null, null);
    }

    public Response delete(String path, String bearer) {
        return send("DELETE", path, bearer, null, null);
    }

    public Response post(String path, String bearer, Object body) {
        return send("POST", path, bearer, "application/json", text(body));
    }

    public Response put(String path, String bearer, Object body) {
        return send("PUT", path, bearer, "application/json", text(body));
    }

    public Response patch(String path, String bearer, Object body) {
        return send("PATCH", path, bearer, "application/merge-patch+json", text(body));
    }

    public Response send(String method, String path, String bearer, String contentType, String body) {
        return sendBytes(method, path, bearer, contentType, body == null ? null : body.getBytes(java.nio.charset.StandardCharsets.UTF_8));
    }

    /** A JSON request with one extra header (such as {@code Idempotency-Key}). */
    public Response sendWithHeader(String method, String path, String bearer, Object body, String header, String value) {
        return sendBytes(method, path, bearer, "application/json", text(body).getBytes(java.nio.charset.StandardCharsets.UTF_8),
                header, value);
    }

    public Response sendBytes(String method, String path, String bearer, String contentType, byte[] body) {
        return sendBytes(method, path, bearer, contentType, body, null, null);
    }

    private Response sendBytes(String method, String path, String bearer, String contentType, byte[] body,
                               String header, String value) {
        HttpRequest.Builder request = HttpRequest.newBuilder(base.resolve(path)).timeout(Duration.ofSeconds(30))
                .method(method, body == null ? HttpRequest.BodyPublishers.noBody() : HttpRequest.BodyPublishers.ofByteArray(body));
        if (bearer != null) {
            request.header("Authorization", "Bearer " + bearer);
        }
        if (contentType != null) {
            request.header("Content-Type", contentType);
        }
        if (header != null) {
            request.header(header, value);
        }
        try {
            HttpResponse<String> response = CLIENT.send(request.build(), HttpResponse.BodyHandlers.ofString());
            return new Response(response.statusCode(), response.headers(), response.body());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        }
    }

    private static String text(Object body) {
        if (body == null) {
            return null;
        }
        if (body instanceof String s) {
            return s;
        }
        try {
            return JSON.writeValueAsString(body);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
