package dev.herald.webhooks;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.herald.delivery.AppGateways;
import dev.herald.delivery.Backoff;
import dev.herald.delivery.WorkSignal;
import io.micrometer.core.instrument.MeterRegistry;
import io.micronaut.context.annotation.Context;
import io.micronaut.context.annotation.Requires;
import io.micronaut.context.annotation.Value;
import jakarta.annotation.PreDestroy;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Sends the webhook outbox: each event {@code POST}ed as {@code {id, type, createdAt, data}} with a
 * {@code Herald-Signature}, at least once. A 2xx answer delivers it; anything else is tried again with
 * exponential backoff (1 s, 2 s, 4 s … at most 60 s between tries, with jitter) until the event is 24 h
 * old, then it ends {@code failed} with the last error. Events of one notification (or call, or
 * installation) go one after another, in order; others go in parallel, at most {@link #PER_APP} per app
 * and {@link #IN_FLIGHT} in all on a node, so a slow receiver holds only its own app's slots. A receiver
 * that is down (unreachable, timing out, 5xx, 429) pauses its app on every node, for longer with each
 * failure in a row, so it gets a probe per pause rather than every event's retry. Runs on one thread of
 * its own plus the JDK HTTP client's; never on a Netty thread, never inside a delivery's transaction.
 */
@Context
@Requires(property = "herald.webhooks.enabled", notEquals = "false")
class WebhookSender implements AutoCloseable {

    private static final Logger LOG = LoggerFactory.getLogger(WebhookSender.class);

    static final int PER_APP = 16;
    static final int IN_FLIGHT = 256;
    static final Duration LEASE = Duration.ofSeconds(30);
    static final Duration TIMEOUT = Duration.ofSeconds(10);
    static final Duration GIVE_UP_AFTER = Duration.ofHours(24);
    static final Duration LONGEST_WAIT = Duration.ofSeconds(60);

    private final WebhookStore store;
    private final AppGateways apps;
    private final ObjectMapper mapper;
    private final MeterRegistry meters;
    private final Clock clock;
    private final Duration poll;
    private final HttpClient http;
    private final WorkSignal wake = new WorkSignal();
    private final ConcurrentLinkedQueue<Result> results = new ConcurrentLinkedQueue<>();
    private final Map<String, AtomicInteger> inFlightByApp = new ConcurrentHashMap<>();
    private final AtomicInteger inFlight = new AtomicInteger();
    private final Thread thread;
    private final boolean allowPrivate;
    /** Why a URL is refused (empty: it is not), as its host resolved in the last half minute. */
    private final com.github.benmanes.caffeine.cache.Cache<String, Optional<String>> refusals =
            com.github.benmanes.caffeine.cache.Caffeine.newBuilder().expireAfterWrite(Duration.ofSeconds(30))
                    .maximumSize(10_000).build();
    private volatile boolean running = true;
    private Instant lastCleanup = Instant.EPOCH;

    WebhookSender(WebhookStore store, AppGateways apps, dev.herald.api.JsonBodies bodies, MeterRegistry meters, Clock clock,
                  @Value("${herald.webhooks.poll:250ms}") Duration poll,
                  @Value("${herald.webhook-allow-private:false}") boolean allowPrivate) {
        this.allowPrivate = allowPrivate;
        this.store = store;
        this.apps = apps;
        this.mapper = bodies.mapper();
        this.meters = meters;
        this.clock = clock;
        this.poll = poll;
        this.http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5))
                .followRedirects(HttpClient.Redirect.NEVER).version(HttpClient.Version.HTTP_1_1).build();
        thread = new Thread(this::loop, "webhooks");
        thread.setDaemon(true);
        thread.start();
    }

    /** How one try went: {@code receiverDown} when the receiver failed as a whole, not just this event. */
    private record Result(WebhookStore.Claimed event, boolean delivered, String error, boolean receiverDown,
                          Duration retryAfter) {
    }

    private void loop() {
        while (running) {
            try {
                writeResults();
                int room = IN_FLIGHT - inFlight.get();
                List<WebhookStore.Claimed> claimed = room <= 0 ? List.of()
                        : store.claim(clock.instant(), LEASE, Math.min(room, 100), inFlightByApp(), PER_APP);
                claimed.forEach(this::send);
                cleanUp();
                if (claimed.isEmpty() || inFlight.get() >= IN_FLIGHT) {
                    wake.await(poll);
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            } catch (RuntimeException e) {
                LOG.warn("Webhook sending failed; claimed events are tried again when their lease ends: {}", e.toString());
                try {
                    wake.await(Duration.ofSeconds(1));
                } catch (InterruptedException interrupted) {
                    Thread.currentThread().interrupt();
                    return;
                }
            }
        }
    }

    private Map<String, Integer> inFlightByApp() {
        Map<String, Integer> counts = new HashMap<>();
        inFlightByApp.forEach((app, n) -> {
            if (n.get() > 0) {
                counts.put(app, n.get());
            }
        });
        return counts;
    }

    private void send(WebhookStore.Claimed event) {
        Optional<JsonNode> webhook = webhookOf(event.appId(), false);
        if (webhook.isEmpty()) {
            // the cache may be a few seconds old: ask the database before deciding there is nobody to tell
            webhook = webhookOf(event.appId(), true);
        }
        if (webhook.isEmpty()) {
            // the app removed its webhook since the event was written: nobody to tell
            meters.counter("herald.webhooks", "outcome", "no_webhook").increment();
            results.add(new Result(event, true, null, false, null));
            return;
        }
        String url = webhook.get().path("url").asText();
        if (!allowPrivate) {
            // again at every delivery: the host may resolve inward now though it did not when it was set
            Optional<String> refused = refusals.get(url, u -> WebhookTargets.refusal(u).filter("private_address"::equals));
            if (refused.isPresent()) {
                results.add(new Result(event, false, refused.get(), false, null));
                return;
            }
        }
        String body;
        HttpRequest request;
        try {
            body = body(event);
            long t = clock.instant().getEpochSecond();
            request = HttpRequest.newBuilder(URI.create(url))
                    .timeout(TIMEOUT)
                    .header("Content-Type", "application/json")
                    .header("User-Agent", "Herald-Webhooks/1")
                    .header("Herald-Event-Id", "evt_" + event.id())
                    .header("Herald-Signature", WebhookSignature.header(webhook.get().path("secret").asText(), t, body))
                    .POST(HttpRequest.BodyPublishers.ofString(body)).build();
        } catch (RuntimeException e) {
            results.add(new Result(event, false, "invalid_request: " + e.getMessage(), false, null));
            return;
        }
        inFlight.incrementAndGet();
        AtomicInteger forApp = inFlightByApp.computeIfAbsent(event.appId(), a -> new AtomicInteger());
        forApp.incrementAndGet();
        http.sendAsync(request, HttpResponse.BodyHandlers.discarding()).whenComplete((response, failure) -> {
            forApp.decrementAndGet();
            inFlight.decrementAndGet();
            if (failure != null) {
                Throwable cause = failure.getCause() != null ? failure.getCause() : failure;
                String error = cause instanceof java.net.http.HttpTimeoutException ? "timeout" : "connection: "
                        + cause.getClass().getSimpleName();
                results.add(new Result(event, false, error, true, null));
            } else if (response.statusCode() / 100 == 2) {
                results.add(new Result(event, true, null, false, null));
            } else {
                int status = response.statusCode();
                boolean down = status >= 500 || status == 429;
                results.add(new Result(event, false, "http_" + status, down, retryAfter(response)));
            }
            wake.signal();
        });
    }

    private Optional<JsonNode> webhookOf(String appId, boolean fresh) {
        return (fresh ? store.app(appId) : apps.app(appId)).map(a -> a.document().path("webhook")).filter(JsonNode::isObject);
    }

    private String body(WebhookStore.Claimed event) {
        try {
            ObjectNode body = mapper.createObjectNode();
            body.put("id", "evt_" + event.id());
            body.put("type", event.type());
            body.put("createdAt", event.createdAt().truncatedTo(ChronoUnit.MILLIS).toString());
            body.set("data", mapper.readTree(event.dataJson()));
            return mapper.writeValueAsString(body);
        } catch (java.io.IOException e) {
            throw new IllegalStateException("stored event is not JSON", e);
        }
    }

    private static Duration retryAfter(HttpResponse<?> response) {
        return response.headers().firstValue("Retry-After").flatMap(v -> {
            try {
                return Optional.of(Duration.ofSeconds(Math.max(0, Long.parseLong(v.trim()))));
            } catch (NumberFormatException e) {
                return Optional.empty();
            }
        }).map(d -> d.compareTo(LONGEST_WAIT) > 0 ? LONGEST_WAIT : d).orElse(null);
    }

    private void writeResults() {
        List<WebhookStore.Outcome> outcomes = new ArrayList<>();
        Map<String, Result> downApps = new HashMap<>();
        Set<String> answered = new HashSet<>();
        Instant now = clock.instant();
        for (Result r; (r = results.poll()) != null; ) {
            WebhookStore.Claimed e = r.event();
            meters.counter("herald.webhooks", "outcome", r.delivered() ? "delivered" : "failed").increment();
            if (r.delivered()) {
                outcomes.add(new WebhookStore.Outcome(e.id(), e.attempts(), true, null, null));
                answered.add(e.appId());
                continue;
            }
            if (r.receiverDown()) {
                downApps.put(e.appId(), r);
            } else {
                answered.add(e.appId());
            }
            Duration wait = wait(e.attempts(), r.retryAfter());
            boolean giveUp = now.plus(wait).isAfter(e.createdAt().plus(GIVE_UP_AFTER));
            outcomes.add(new WebhookStore.Outcome(e.id(), e.attempts(), false, giveUp ? null : now.plus(wait), r.error()));
            if (giveUp) {
                meters.counter("herald.webhooks.given.up").increment();
            }
        }
        if (outcomes.isEmpty()) {
            return;
        }
        store.finish(outcomes);
        answered.removeAll(downApps.keySet());
        if (!answered.isEmpty()) {
            store.resume(answered);
        }
        downApps.forEach((app, r) -> {
            Instant until = store.pause(app, now, failures -> wait(failures, r.retryAfter()));
            LOG.info("Webhook receiver of app {} failed ({}); its events wait until {}", app, r.error(), until);
        });
    }

    /** The wait after {@code attempts} failed tries: 1 s doubling to 60 s, jittered, at least Retry-After. */
    static Duration wait(int attempts, Duration retryAfter) {
        return Backoff.after(attempts, retryAfter, LONGEST_WAIT);
    }

    private void cleanUp() {
        Instant now = clock.instant();
        if (Duration.between(lastCleanup, now).toHours() >= 1) {
            lastCleanup = now;
            int forgotten = store.forgetFailed(now.minus(Duration.ofDays(7)));
            if (forgotten > 0) {
                LOG.info("Forgot {} webhook events given up more than 7 days ago", forgotten);
            }
        }
    }

    @Override
    @PreDestroy
    public void close() {
        running = false;
        thread.interrupt();
        try {
            thread.join(TimeUnit.SECONDS.toMillis(5));
            // sends in flight get a few seconds to finish, so a rolling update does not send them all again
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
            while (inFlight.get() > 0 && System.nanoTime() < deadline) {
                wake.await(Duration.ofMillis(100));
            }
            writeResults();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } catch (RuntimeException e) {
            LOG.info("Webhook results not written at shutdown; those events are sent again after their lease: {}",
                    e.toString());
        }
    }
}
