package dev.herald.support;

import com.fasterxml.jackson.databind.JsonNode;
import com.sun.net.httpserver.HttpServer;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A webhook receiver on loopback (the JDK's HTTP server): records every request it answers 2xx, counts
 * the others, and can be switched to answer 503, or to hold every request until released.
 */
public final class WebhookReceiver implements AutoCloseable {

    /** One request as received: the raw body (what the signature covers) and the signature header. */
    public record Hook(String body, String signature, JsonNode json) {
        public String type() {
            return json.path("type").asText();
        }

        public JsonNode data() {
            return json.path("data");
        }
    }

    public enum Mode { ACCEPT, FAIL, HOLD }

    private final HttpServer server;
    private final List<Hook> accepted = new CopyOnWriteArrayList<>();
    private final AtomicInteger refused = new AtomicInteger();
    private volatile Mode mode = Mode.ACCEPT;
    private volatile CountDownLatch release = new CountDownLatch(1);

    public WebhookReceiver() {
        try {
            server = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 0);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        server.setExecutor(Executors.newCachedThreadPool());
        server.createContext("/hook", exchange -> {
            String body = new String(exchange.getRequestBody().readAllBytes(), StandardCharsets.UTF_8);
            String signature = exchange.getRequestHeaders().getFirst("Herald-Signature");
            Mode now = mode;
            if (now == Mode.HOLD) {
                try {
                    release.await();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
                now = Mode.FAIL;
            }
            if (now == Mode.FAIL) {
                refused.incrementAndGet();
                exchange.sendResponseHeaders(503, -1);
            } else {
                accepted.add(new Hook(body, signature, Api.JSON.readTree(body)));
                exchange.sendResponseHeaders(204, -1);
            }
            exchange.close();
        });
        server.start();
    }

    public String url() {
        return "http://127.0.0.1:" + server.getAddress().getPort() + "/hook";
    }

    public void mode(Mode mode) {
        if (mode == Mode.HOLD) {
            release = new CountDownLatch(1);
        } else {
            release.countDown();
        }
        this.mode = mode;
    }

    public List<Hook> accepted() {
        return List.copyOf(accepted);
    }

    public List<Hook> accepted(String type) {
        return accepted.stream().filter(h -> h.type().equals(type)).toList();
    }

    public int refused() {
        return refused.get();
    }

    @Override
    public void close() {
        release.countDown();
        server.stop(0);
    }
}
