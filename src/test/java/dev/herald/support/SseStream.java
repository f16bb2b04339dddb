package dev.herald.support;

import com.fasterxml.jackson.databind.JsonNode;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/**
 * A real Server-Sent Events connection to {@code /v1/inbox/stream}: a reader thread parses the events
 * (event, id, data lines; a blank line ends one) into a queue. Closing it closes the connection.
 */
public final class SseStream implements AutoCloseable {

    private static final HttpClient HTTP = HttpClient.newHttpClient();

    /** One server-sent event as the client parsed it. */
    public record Event(String name, String id, String data, String retry) {
        public JsonNode json() {
            try {
                return Api.JSON.readTree(data);
            } catch (Exception e) {
                throw new AssertionError(data, e);
            }
        }
    }

    private final BlockingQueue<Event> events = new LinkedBlockingQueue<>();
    private final int status;
    private final Stream<String> lines;

    /** Opens {@code base + /v1/inbox/stream + query} with an optional bearer token and Last-Event-ID. */
    public SseStream(String base, String query, String bearer, String lastEventId) throws Exception {
        HttpRequest.Builder request = HttpRequest.newBuilder(URI.create(base + "/v1/inbox/stream" + query))
                .header("Accept", "text/event-stream");
        if (bearer != null) {
            request.header("Authorization", "Bearer " + bearer);
        }
        if (lastEventId != null) {
            request.header("Last-Event-ID", lastEventId);
        }
        HttpResponse<Stream<String>> response = HTTP.send(request.GET().build(), HttpResponse.BodyHandlers.ofLines());
        status = response.statusCode();
        lines = response.body();
        Thread reader = new Thread(this::read, "sse-reader");
        reader.setDaemon(true);
        reader.start();
    }

    public int status() {
        return status;
    }

    private void read() {
        String name = "message";
        String id = null;
        String retry = null;
        StringBuilder data = new StringBuilder();
        try {
            for (String line : (Iterable<String>) lines::iterator) {
                if (line.isEmpty()) {
                    if (data.length() > 0) {
                        events.add(new Event(name, id, data.toString(), retry));
                    }
                    name = "message";
                    id = null;
                    retry = null;
                    data.setLength(0);
                } else if (line.startsWith("event:")) {
                    name = line.substring(6).trim();
                } else if (line.startsWith("id:")) {
                    id = line.substring(3).trim();
                } else if (line.startsWith("retry:")) {
                    retry = line.substring(6).trim();
                } else if (line.startsWith("data:")) {
                    data.append(line.substring(5).trim());
                }
            }
        } catch (RuntimeException closed) {
            // the stream was closed
        }
    }

    /** The next event of that name within {@code within}, skipping others (pings). */
    public Event next(String name, Duration within) throws InterruptedException {
        long deadline = System.nanoTime() + within.toNanos();
        while (System.nanoTime() < deadline) {
            Event e = events.poll(200, TimeUnit.MILLISECONDS);
            if (e != null && e.name().equals(name)) {
                return e;
            }
        }
        throw new AssertionError("no '" + name + "' event within " + within);
    }

    /** The next event within {@code within} that is not a ping. */
    public Event nextNotPing(Duration within) throws InterruptedException {
        long deadline = System.nanoTime() + within.toNanos();
        while (System.nanoTime() < deadline) {
            Event e = events.poll(200, TimeUnit.MILLISECONDS);
            if (e != null && !e.name().equals("ping")) {
                return e;
            }
        }
        throw new AssertionError("no event but pings within " + within);
    }

    @Override
    public void close() {
        lines.close();
    }
}
