package dev.herald.calls;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.herald.api.ApiException;
import dev.herald.stats.StatsCounter;
import dev.herald.api.JsonBodies;
import dev.herald.auth.Caller;
import dev.herald.delivery.AppGateways;
import dev.herald.delivery.DeliveryStore;
import dev.herald.delivery.GatewayCredentials;
import dev.herald.delivery.Priority;
import dev.herald.delivery.PushContent;
import dev.herald.delivery.PushKind;
import dev.herald.delivery.WorkSignals;
import dev.herald.devices.Platform;
import dev.herald.live.LiveEvents;
import dev.herald.live.LiveHub;
import dev.herald.notifications.NotificationService;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import io.micronaut.context.annotation.Value;
import io.micronaut.transaction.TransactionOperations;
import jakarta.annotation.PreDestroy;
import jakarta.inject.Singleton;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.sql.Connection;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Incoming calls, the fast path: no queue. Ringing reads the callee's devices while inserting the call
 * (one statement, which also decides that a second post of the same callId only answers), commits,
 * sends every route at once through {@link CallRinger}, records the gateways' answers and only then
 * answers. Ending a call (DELETE, or its ring time running out) sends {@code call.ended} to the routes
 * that rang, once: whichever ends the call first does it. A call that times out also becomes a
 * {@code call.missed} notification, created in the same transaction that ends it.
 *
 * <p>The database work runs on a small pool of its own ({@code herald.calls.threads}), never on an
 * event loop and never behind notification work.
 */
@Singleton
public class CallService implements AutoCloseable {

    private static final Logger LOG = LoggerFactory.getLogger(CallService.class);
    /** How long a call.ended message may wait for a device that is offline. */
    static final Duration ENDED_TTL = Duration.ofSeconds(30);
    /** Ended calls are kept this long, so their callId is not rung again and GET can show them. */
    static final Duration RETENTION = Duration.ofDays(7);

    private final CallStore store;
    private final CallRinger ringer;
    private final CallDirectory directory;
    /** The post of each callId being rung on this node; a later post of it waits for its turn. */
    private final java.util.concurrent.ConcurrentHashMap<String, CompletableFuture<Void>> turns =
            new java.util.concurrent.ConcurrentHashMap<>();
    private final DeliveryStore deliveries;
    private final NotificationService notifications;
    private final WorkSignals signals;
    private final LiveHub live;
    private final AppGateways gateways;
    private final dev.herald.webhooks.WebhookStore webhooks;
    private final StatsCounter stats;
    private final TransactionOperations<Connection> transactions;
    private final MeterRegistry meters;
    private final Clock clock;
    private final ObjectMapper mapper;
    private final ExecutorService executor;
    private final Timer ringLatency;
    private final Timer endLatency;
    private final Timer stored;
    private final Timer acknowledged;
    private final Timer handed;
    private final Timer picked;
    private final Timer read;

    CallService(CallStore store, CallRinger ringer, CallDirectory directory, DeliveryStore deliveries, NotificationService notifications,
                WorkSignals signals, LiveHub live, AppGateways gateways, dev.herald.webhooks.WebhookStore webhooks,
                StatsCounter stats,
                TransactionOperations<Connection> transactions,
                MeterRegistry meters, Clock clock, JsonBodies bodies, @Value("${herald.calls.threads:8}") int threads) {
        this.store = store;
        this.ringer = ringer;
        this.directory = directory;
        this.deliveries = deliveries;
        this.notifications = notifications;
        this.signals = signals;
        this.live = live;
        this.gateways = gateways;
        this.webhooks = webhooks;
        this.stats = stats;
        this.transactions = transactions;
        this.meters = meters;
        this.clock = clock;
        this.mapper = bodies.mapper();
        AtomicInteger n = new AtomicInteger();
        this.executor = Executors.newFixedThreadPool(threads, r -> {
            Thread t = new Thread(r, "calls-" + n.incrementAndGet());
            t.setDaemon(true);
            return t;
        });
        this.ringLatency = Timer.builder("herald.calls.handover").tag("event", "call.incoming")
                .description("From a call request to every gateway's acknowledgement").register(meters);
        this.endLatency = Timer.builder("herald.calls.handover").tag("event", "call.ended")
                .description("From a call request to every gateway's acknowledgement").register(meters);
        this.stored = Timer.builder("herald.calls.stage").tag("stage", "stored")
                .description("A new call: from its request to its commit").publishPercentiles(0.5, 0.99, 0.999)
                .register(meters);
        this.handed = Timer.builder("herald.calls.stage").tag("stage", "handed")
                .description("A new call: from its request to its messages handed to the gateways")
                .publishPercentiles(0.5, 0.99, 0.999).register(meters);
        this.picked = Timer.builder("herald.calls.stage").tag("stage", "picked")
                .description("Any post of a call (a repeated callId too): from its request to a calls thread taking it up")
                .publishPercentiles(0.5, 0.99, 0.999).register(meters);
        this.read = Timer.builder("herald.calls.stage").tag("stage", "read")
                .description("A new call: from its request to its lock taken and the callee's devices read")
                .publishPercentiles(0.5, 0.99, 0.999).register(meters);
        this.acknowledged = Timer.builder("herald.calls.stage").tag("stage", "acknowledged")
                .description("A new call: from its messages handed to the gateways to every acknowledgement")
                .publishPercentiles(0.5, 0.99, 0.999).register(meters);
    }

    /** A call and the routes to show with it. */
    record Answer(CallStore.StoredCall call, List<CallStore.Route> routes, boolean ended) {
    }

    /**
     * Rings the callee's devices, or answers the call already ringing under this callId. When this node
     * knows the callee's devices and that the callId is new ({@link CallDirectory}), the call rings at
     * once, on the thread that took the request. Either way the call's first round trip (its lock, then
     * reads) decides whether it is new and reads the callee's devices: devices memory did not know ring
     * then, devices memory rang that are no longer the callee's are sent call.ended at once, and the
     * call and its routes are stored and committed. A second post of the same callId waits for that
     * commit on the lock, so it never rings twice. The answer comes after the commit and the gateways'
     * acknowledgements; should the call not be stored after it rang, the caller gets the error and what
     * rang is sent call.ended (see {@link Ringing#cancel}).
     */
    CompletableFuture<Answer> ring(Caller.AppKey key, CallRequest request) {
        long started = System.nanoTime();
        // as PostgreSQL keeps it, so a repeated post answers the very same createdAt
        Instant now = clock.instant().truncatedTo(java.time.temporal.ChronoUnit.MICROS);
        CallStore.StoredCall call = new CallStore.StoredCall(key.appId(), request.callId(), key.test(), request.callee(),
                request.callerId(), request.callerName(), request.video(), request.ringSeconds(), now,
                now.plusSeconds(request.ringSeconds()), null, null, null);
        CallDirectory.Read began = directory.readBegins();
        // posts of one callId on this node take turns, so one rung from memory is stored before the next looks
        String turnKey = turnKey(call.appId(), call.callId());
        CompletableFuture<Void> turn = new CompletableFuture<>();
        CompletableFuture<Void> ahead = turns.putIfAbsent(turnKey, turn);
        Early early = null;
        if (ahead == null) {
            try {
                early = fromMemory(call);
            } catch (RuntimeException e) {
                // PostgreSQL's way still rings it (a message memory sent goes again with the same push id)
                LOG.warn("Call {} of app {} could not ring from memory: {}", call.callId(), call.appId(), e.toString());
            }
        }
        Ringing ringing = new Ringing(early);
        return afterTurn(ahead).thenApplyAsync(ignored -> {
                    try {
                        return decide(key, call, ringing, began, started);
                    } finally {
                        if (ahead == null) {
                            turns.remove(turnKey, turn);
                            turn.complete(null);
                        }
                    }
                }, executor)
                .thenCompose(rung -> {
                    CallStore.Started startedCall = rung.started();
                    if (!startedCall.created()) {
                        return CompletableFuture.completedFuture(new Answer(startedCall.call(), startedCall.routes(), false));
                    }
                    meters.counter("herald.calls.started", "app", key.appId()).increment();
                    return rung.ringing().outcomes
                            .thenApplyAsync(outcomes -> recordRung(startedCall, rung.ringing().sent, outcomes, started),
                                    executor);
                });
    }

    /**
     * The call's transaction, on a calls thread: decides whether the call is new, reads the callee's
     * devices, rings what is not ringing yet (see {@link Ringing#start}) and stores the call.
     */
    private Rung decide(Caller.AppKey key, CallStore.StoredCall call, Ringing ringing, CallDirectory.Read began,
                         long started) {
        picked.record(System.nanoTime() - started, TimeUnit.NANOSECONDS);
        // Redis answers while PostgreSQL works
        LiveHub.PresenceLookup presence = live.lookUp(List.of(call.callee()));
        CallStore.Started startedCall;
        try {
            startedCall = transactions.executeWrite(status -> store.start(call, devices -> {
                read.record(System.nanoTime() - started, TimeUnit.NANOSECONDS);
                directory.remember(call.appId(), call.callee(), devices, began);
                boolean present = presence.reach().get(call.callee()) != LiveHub.Reach.AWAY;
                List<CallStore.Route> routes = plan(call, devices, present);
                ringing.start(key, call, routes, started);
                return routes;
            }));
        } catch (RuntimeException e) {
            ringing.cancel(call, e);
            throw e;
        }
        if (startedCall.created()) {
            stored.record(System.nanoTime() - started, TimeUnit.NANOSECONDS);
        } else if (ringing.early != null) {
            // another node stored this callId a moment ago, before its notice reached this one
            memory(call.appId(), "duplicate");
            LOG.warn("Call {} of app {} rang from memory, but another post of it was stored first; it answers that call",
                    call.callId(), call.appId());
        }
        return new Rung(startedCall, ringing);
    }

    /**
     * Completes once the post of this callId being rung on this node (if any) is stored: a call that
     * rang from memory may not hold its lock yet, and a device declining it at once must find it.
     */
    private CompletableFuture<Void> afterPostsHere(String appId, String callId) {
        return afterTurn(turns.get(turnKey(appId, callId)));
    }

    /** Completes when {@code ahead} (the turn of a post in flight, or null) does, however it went. */
    private static CompletableFuture<Void> afterTurn(CompletableFuture<Void> ahead) {
        return ahead == null ? CompletableFuture.completedFuture(null) : ahead.exceptionally(e -> null);
    }

    private static String turnKey(String appId, String callId) {
        return appId + '/' + callId;
    }

    /** How many requests wait for this node's post of the callId to be stored (for monitoring and tests). */
    int waitingForPost(String appId, String callId) {
        CompletableFuture<Void> ahead = turns.get(turnKey(appId, callId));
        return ahead == null ? 0 : ahead.getNumberOfDependents();
    }

    /** A call stored and the messages it rang with. */
    private record Rung(CallStore.Started started, Ringing ringing) {
    }

    /** A message a call sent from memory, before its routes were read. */
    private record EarlyRing(CallStore.Route route, CompletableFuture<CallRinger.Outcome> outcome) {
    }

    /** What a call rang from memory (by {@link #routeKey}), and when it was handed over. */
    private record Early(Map<String, EarlyRing> rung, long handedAt) {
    }

    private static String routeKey(CallStore.Route route) {
        return route.installationId() + "\n" + route.token();
    }

    private void memory(String appId, String outcome) {
        meters.counter("herald.calls.memory", "app", appId, "outcome", outcome).increment();
    }

    /**
     * Rings the callee's devices from memory when this node knows them, knows the callId is new and has
     * the app's credentials at hand; null otherwise (the call rings once PostgreSQL answered). Never
     * blocks: this runs on the thread that took the request.
     */
    private Early fromMemory(CallStore.StoredCall call) {
        if (call.test() || !directory.ready()) {
            return null; // a test key's call sends nothing anyway
        }
        Optional<List<CallStore.CalleeDevice>> known = directory.devices(call.appId(), call.callee());
        if (known.isEmpty()) {
            memory(call.appId(), "callee_unknown");
            return null;
        }
        List<CallStore.Route> routes = new ArrayList<>();
        for (CallStore.CalleeDevice d : known.get()) {
            Platform platform = Platform.fromWire(d.platform());
            boolean ios = platform == Platform.IOS;
            String token = ios ? d.voipToken() : d.pushToken();
            if (token == null) {
                continue;
            }
            Optional<Optional<GatewayCredentials>> credentials = gateways.credentialsIfCached(call.appId(), platform);
            if (credentials.isEmpty()) {
                memory(call.appId(), "credentials_unknown");
                return null;
            }
            if (credentials.get().isPresent()) {
                routes.add(new CallStore.Route(-1, d.installationId(), d.platform(), ios ? "voip" : "push", token,
                        "sending", null, null, null));
            }
        }
        if (routes.isEmpty()) {
            return null; // nothing to ring: PostgreSQL's read says why
        }
        if (!directory.claimNew(call.appId(), call.callId())) {
            memory(call.appId(), "call_id_maybe_used");
            return null;
        }
        List<CompletableFuture<CallRinger.Outcome>> outcomes = ringer.sendEach(call.appId(), routes, incoming(call),
                "call.incoming", call.callId());
        long handedAt = System.nanoTime();
        Map<String, EarlyRing> rung = new LinkedHashMap<>();
        for (int i = 0; i < routes.size(); i++) {
            rung.put(routeKey(routes.get(i)), new EarlyRing(routes.get(i), outcomes.get(i)));
        }
        memory(call.appId(), "rang");
        return new Early(rung, handedAt);
    }

    /** The messages of a new call: sent from memory, or before its transaction commits. */
    private final class Ringing {

        private final Early early;
        private boolean started;
        private List<CallStore.Route> sent = List.of();
        private CompletableFuture<List<CallRinger.Outcome>> outcomes = CompletableFuture.completedFuture(List.of());
        private boolean toStreams;

        Ringing(Early early) {
            this.early = early;
        }

        /**
         * The call is new and these are its routes: the messages memory sent already count for their
         * routes, the others go now, and what memory rang that is not a route any more is ended.
         */
        void start(Caller.AppKey key, CallStore.StoredCall call, List<CallStore.Route> routes, long startedNanos) {
            started = true;
            toStreams = routes.stream().anyMatch(r -> "live".equals(r.channel()));
            if (toStreams) {
                live.publish(call.callee(), "call.incoming", null, LiveEvents.json(incoming(call).data()));
            }
            sent = routes.stream().filter(r -> "sending".equals(r.status())).toList();
            Map<String, EarlyRing> left = early == null ? Map.of() : new LinkedHashMap<>(early.rung());
            List<CompletableFuture<CallRinger.Outcome>> each = new ArrayList<>(sent.size());
            List<CallStore.Route> late = new ArrayList<>();
            for (CallStore.Route r : sent) {
                EarlyRing rang = left.isEmpty() ? null : left.remove(routeKey(r));
                each.add(rang == null ? null : rang.outcome());
                if (rang == null) {
                    late.add(r);
                }
            }
            long handedOver = System.nanoTime();
            if (!late.isEmpty()) {
                var lateOutcomes = ringer.sendEach(key.appId(), late, incoming(call), "call.incoming", call.callId()).iterator();
                each.replaceAll(o -> o == null ? lateOutcomes.next() : o);
                if (early != null) {
                    memory(call.appId(), "rang_late");
                }
            } else if (early != null) {
                handedOver = early.handedAt();
            }
            long handed = handedOver;
            outcomes = CallRinger.all(each).whenComplete((done, failure) -> acknowledged.record(System.nanoTime() - handed,
                    TimeUnit.NANOSECONDS));
            CallService.this.handed.record(handed - startedNanos, TimeUnit.NANOSECONDS);
            if (!left.isEmpty()) {
                memory(call.appId(), "rang_stale");
                LOG.info("Call {} of app {} rang {} device(s) from memory that are no longer the callee's; "
                        + "they are sent call.ended", call.callId(), call.appId(), left.size());
                cancelOnceAnswered(call, left.values());
            }
        }

        /**
         * Sends call.ended ({@code cancelled}) to these routes once the gateways answered their ring, on the
         * calls' pool, not the gateway's event loop: sending may read an app's credentials.
         */
        private void cancelOnceAnswered(CallStore.StoredCall call, java.util.Collection<EarlyRing> rang) {
            cancelOnceAnswered(call, rang.stream().map(EarlyRing::route).toList(),
                    CallRinger.all(rang.stream().map(EarlyRing::outcome).toList()));
        }

        private void cancelOnceAnswered(CallStore.StoredCall call, List<CallStore.Route> rang,
                                        CompletableFuture<List<CallRinger.Outcome>> answered) {
            CallStore.StoredCall cancelled = call.endedAt(clock.instant(), EndReason.CANCELLED.wire());
            answered.whenCompleteAsync((done, error) -> ringer.send(call.appId(), rang, ended(cancelled), "call.ended",
                    call.callId()), executor);
        }

        /**
         * The call rang but could not be stored (its transaction failed): what rang is told the call
         * ended ({@code cancelled}), once the gateways answered the ring, so no device or stream keeps
         * ringing for a call nobody can end.
         */
        void cancel(CallStore.StoredCall call, RuntimeException failure) {
            // rang from memory only, when PostgreSQL failed before the routes were read
            boolean fromMemory = !started && early != null;
            if ((fromMemory ? early.rung().isEmpty() : sent.isEmpty()) && !toStreams) {
                return;
            }
            LOG.warn("Call {} of app {} rang but could not be stored ({}); call.ended goes to what rang",
                    call.callId(), call.appId(), failure.toString());
            meters.counter("herald.calls.ended", "app", call.appId(), "reason", EndReason.CANCELLED.wire()).increment();
            if (toStreams) {
                live.publish(call.callee(), "call.ended", null, LiveEvents.json(
                        ended(call.endedAt(clock.instant(), EndReason.CANCELLED.wire())).data()));
            }
            if (fromMemory) {
                cancelOnceAnswered(call, early.rung().values());
            } else {
                cancelOnceAnswered(call, sent, outcomes);
            }
        }
    }

    /**
     * Which route each device gets: iOS the VoIP token, Android the FCM token. Routes that need no
     * gateway (no token, a test key, no credentials) get their final status at once; the rest are
     * {@code sending}. A callee with no device gets one route saying so.
     */
    private List<CallStore.Route> plan(CallStore.StoredCall call, List<CallStore.CalleeDevice> devices, boolean present) {
        List<CallStore.Route> routes = new ArrayList<>();
        int seq = 0;
        if (present) {
            // the callee's streams get call.incoming as soon as the call is known to be new
            // (a test key's too: nothing leaves Herald)
            routes.add(new CallStore.Route(seq++, null, null, "live", null, "sent", null, null, null));
        }
        if (devices.isEmpty()) {
            routes.add(new CallStore.Route(seq, null, null, "push", null, "suppressed", "no_device", null, null));
            return routes;
        }
        for (CallStore.CalleeDevice d : devices) {
            Platform platform = Platform.fromWire(d.platform());
            boolean ios = platform == Platform.IOS;
            String channel = ios ? "voip" : "push";
            String token = ios ? d.voipToken() : d.pushToken();
            String status;
            String reason = null;
            if (token == null) {
                status = "suppressed";
                reason = ios ? "no_voip_token" : "no_token";
            } else if (call.test()) {
                status = "simulated";
            } else if (!ringer.configured(call.appId(), platform)) {
                status = "suppressed";
                reason = "not_configured";
            } else {
                status = "sending";
            }
            routes.add(new CallStore.Route(seq++, d.installationId(), d.platform(), channel, token, status, reason, null, null));
        }
        return routes;
    }

    private Answer recordRung(CallStore.Started started, List<CallStore.Route> sent, List<CallRinger.Outcome> outcomes,
                              long startedNanos) {
        ringLatency.record(System.nanoTime() - startedNanos, TimeUnit.NANOSECONDS);
        CallStore.StoredCall call = started.call();
        Map<Integer, CallStore.Route> bySeq = new LinkedHashMap<>();
        started.routes().forEach(r -> bySeq.put(r.seq(), r));
        List<CallStore.Route> changed = new ArrayList<>();
        List<DeliveryStore.DeadToken> deadVoip = new ArrayList<>();
        List<DeliveryStore.DeadToken> deadPush = new ArrayList<>();
        for (int i = 0; i < sent.size(); i++) {
            CallStore.Route route = sent.get(i);
            CallRinger.Outcome outcome = outcomes.get(i);
            if (outcome.tokenDead()) {
                if ("voip".equals(route.channel())) {
                    deadVoip.add(new DeliveryStore.DeadToken(route.installationId(), route.token(), outcome.deadSince(),
                            outcome.reason()));
                } else {
                    deadPush.add(new DeliveryStore.DeadToken(route.installationId(), route.token(), outcome.deadSince(),
                            outcome.reason()));
                }
            }
            CallStore.Route updated = route.withOutcome(outcome.status(), outcome.reason(), outcome.tokenDead());
            changed.add(updated);
            bySeq.put(updated.seq(), updated);
        }
        List<CallStore.Route> routes = List.copyOf(bySeq.values());
        Instant now = clock.instant();
        boolean webhook = gateways.hasWebhook(call.appId());
        try {
            transactions.executeWrite(status -> {
                if (!changed.isEmpty()) {
                    store.recordRung(call.appId(), call.callId(), changed, now);
                }
                if (!deadVoip.isEmpty()) {
                    deliveries.clearDeadTokens(deadVoip, true, now);
                }
                if (!deadPush.isEmpty()) {
                    deliveries.clearDeadTokens(deadPush, now);
                }
                stats.add(call.appId(), StatsCounter.CALL, routes.stream().anyMatch(r -> "sent".equals(r.status()))
                        ? "rang" : "not_rung", null, now);
                if (webhook && store.tellRouted(call.appId(), call.callId())) {
                    webhooks.append(call.appId(), "call.routed", "call:" + call.callId(), event(call, routes, false, null), now);
                }
                return null;
            });
            if (!deadVoip.isEmpty() || !deadPush.isEmpty()) {
                // this node's next call to the callee does not wait for the notice to leave the dead token out
                directory.forget(call.appId(), call.callee());
            }
        } catch (RuntimeException e) {
            // the call rang; only its record is behind: the answer still tells the caller what happened
            LOG.warn("Call {} of app {}: route outcomes not recorded: {}", call.callId(), call.appId(), e.toString());
        }
        count(call.appId(), "call.incoming", routes, false);
        return new Answer(call, routes, false);
    }

    /**
     * Ends a ringing call and sends {@code call.ended} to every route that rang; a call already ended is
     * answered as it ended, sending nothing. 404 for a call the app does not have.
     */
    CompletableFuture<Answer> end(Caller.AppKey key, String callId, EndReason reason) {
        long started = System.nanoTime();
        return afterPostsHere(key.appId(), callId).thenApplyAsync(ignored -> transactions.executeWrite(status -> {
            store.awaitStored(key.appId(), callId);
            Instant now = clock.instant();
            var ended = store.end(key.appId(), callId, reason, now);
            if (ended.isPresent()) {
                store.markEnding(key.appId(), callId, now);
                return new Answer(ended.get(), store.routes(key.appId(), callId), true);
            }
            CallStore.StoredCall existing = store.find(key.appId(), callId).orElseThrow(() -> ApiException.notFound("Call"));
            return new Answer(existing, store.routes(key.appId(), callId), false);
        }), executor).thenCompose(answer -> answer.ended() ? sendEnded(answer.call(), answer.routes(), started)
                : CompletableFuture.completedFuture(new Answer(answer.call(), answer.routes(), true)));
    }

    /** Sends call.ended on the routes that rang and records the outcomes. */
    private CompletableFuture<Answer> sendEnded(CallStore.StoredCall call, List<CallStore.Route> routes, long startedNanos) {
        meters.counter("herald.calls.ended", "app", call.appId(), "reason", call.endReason()).increment();
        List<CallStore.Route> toSend = new ArrayList<>();
        List<CallStore.Route> settled = new ArrayList<>();
        boolean toStreams = false;
        for (CallStore.Route r : routes) {
            if ("live".equals(r.channel())) {
                toStreams = true;
                settled.add(r.withEnd("sent", null));
            } else if (r.token() == null || "suppressed".equals(r.status())) {
                settled.add(r.withEnd("suppressed", r.reason() == null ? "token_invalid" : r.reason()));
            } else if ("simulated".equals(r.status())) {
                settled.add(r.withEnd("simulated", null));
            } else {
                toSend.add(r);
            }
        }
        if (toStreams) {
            live.publish(call.callee(), "call.ended", null, LiveEvents.json(ended(call).data()));
        }
        return ringer.send(call.appId(), toSend, ended(call), "call.ended", call.callId()).thenApplyAsync(outcomes -> {
            endLatency.record(System.nanoTime() - startedNanos, TimeUnit.NANOSECONDS);
            Map<Integer, CallStore.Route> bySeq = new java.util.TreeMap<>();
            settled.forEach(r -> bySeq.put(r.seq(), r));
            for (int i = 0; i < toSend.size(); i++) {
                CallRinger.Outcome o = outcomes.get(i);
                bySeq.put(toSend.get(i).seq(), toSend.get(i).withEnd(o.status(), o.reason()));
            }
            List<CallStore.Route> all = List.copyOf(bySeq.values());
            Instant now = clock.instant();
            boolean webhook = gateways.hasWebhook(call.appId());
            try {
                transactions.executeWrite(status -> {
                    store.recordEnded(call.appId(), call.callId(), all, now);
                    stats.add(call.appId(), StatsCounter.CALL, "ended", call.endReason(), now);
                    if (webhook && store.tellRouted(call.appId(), call.callId())) {
                        // ended before the ring's outcome was recorded: call.routed first, as the routes stood
                        webhooks.append(call.appId(), "call.routed", "call:" + call.callId(),
                                event(call, routes, false, null), now);
                    }
                    if (webhook) {
                        webhooks.append(call.appId(), "call.ended", "call:" + call.callId(), event(call, all, true, call.endReason()), now);
                    }
                    return null;
                });
            } catch (RuntimeException e) {
                LOG.warn("Call {} of app {}: call.ended outcomes not recorded: {}", call.callId(), call.appId(), e.toString());
            }
            count(call.appId(), "call.ended", all, true);
            return new Answer(call, all, true);
        }, executor);
    }

    /**
     * Ends calls whose ring time ran out (reason {@code timeout}), each with its {@code call.missed}
     * notification in the same transaction, then sends their call.ended messages. Answers how many
     * calls it ended. Safe to run on every node at once: each call is ended by one of them.
     */
    int endTimedOut(int limit) {
        Instant now = clock.instant();
        List<CallStore.StoredCall> ended = transactions.executeWrite(status -> {
            List<CallStore.StoredCall> calls = store.endTimedOut(now, limit);
            List<CallStore.StoredCall> withMissed = new ArrayList<>(calls.size());
            for (CallStore.StoredCall c : calls) {
                store.markEnding(c.appId(), c.callId(), now);
                String id = notifications.acceptFromHerald(c.appId(), c.test(), missedCall(c), now);
                store.setMissedNotification(c.appId(), c.callId(), id);
                withMissed.add(c.withMissedNotification(id));
            }
            return withMissed;
        });
        if (ended.isEmpty()) {
            return 0;
        }
        signals.wakeRouter();
        signals.announce(WorkSignals.Kind.ROUTE);
        for (CallStore.StoredCall call : ended) {
            long started = System.nanoTime();
            CompletableFuture.supplyAsync(() -> transactions.executeRead(status -> store.routes(call.appId(), call.callId())), executor)
                    .thenCompose(routes -> sendEnded(call, routes, started))
                    .whenComplete((answer, failure) -> {
                        if (failure != null) {
                            LOG.warn("Call {} of app {} timed out; its call.ended messages failed: {}", call.callId(),
                                    call.appId(), failure.toString());
                        }
                    });
        }
        return ended.size();
    }

    /** How long a call.ended may be on its way before another node sends it again. */
    static final Duration ENDING_STUCK = Duration.ofSeconds(60);

    /**
     * Sends again the call.ended of calls whose node died between ending them and recording the outcomes
     * (same push ids, so a device that got it already sees the same message); answers how many calls.
     */
    int resendStuckEnds() {
        Instant now = clock.instant();
        List<String[]> stuck = transactions.executeWrite(status -> store.claimStuckEnds(now.minus(ENDING_STUCK), now, 50));
        for (String[] c : stuck) {
            long started = System.nanoTime();
            CompletableFuture.supplyAsync(() -> transactions.executeRead(status -> new Answer(
                            store.find(c[0], c[1]).orElseThrow(), store.routes(c[0], c[1]), true)), executor)
                    .thenCompose(answer -> sendEnded(answer.call(), answer.routes(), started))
                    .whenComplete((answer, failure) -> {
                        if (failure != null) {
                            LOG.warn("Call {} of app {}: call.ended sent again failed: {}", c[1], c[0], failure.toString());
                        }
                    });
        }
        return stuck.size();
    }

    /** The earliest moment a ringing call times out, if any rings. */
    java.util.Optional<Instant> nextRingEnd() {
        return transactions.executeRead(status -> store.nextRingEnd());
    }

    /** Forgets calls that ended more than {@link #RETENTION} ago; answers how many. */
    int forgetOld() {
        Instant before = clock.instant().minus(RETENTION);
        int total = 0;
        int n;
        do {
            n = transactions.executeWrite(status -> store.deleteEndedBefore(before, 10_000));
            total += n;
        } while (n == 10_000);
        return total;
    }

    /** A call as GET shows it, with its call.incoming routes. */
    CompletableFuture<Answer> find(Caller.AppKey key, String callId) {
        return afterPostsHere(key.appId(), callId).thenApplyAsync(ignored -> transactions.executeRead(status -> {
            store.awaitStored(key.appId(), callId);
            CallStore.StoredCall call = store.find(key.appId(), callId).orElseThrow(() -> ApiException.notFound("Call"));
            return new Answer(call, store.routes(key.appId(), callId), false);
        }), executor);
    }

    /** {@code {type: "call.incoming", callId, callerId, callerName, video}}, until the ring ends. */
    static PushContent incoming(CallStore.StoredCall call) {
        Map<String, String> data = new LinkedHashMap<>();
        data.put("type", "call.incoming");
        data.put("callId", call.callId());
        data.put("callerId", call.callerId());
        if (call.callerName() != null) {
            data.put("callerName", call.callerName());
        }
        data.put("video", Boolean.toString(call.video()));
        return new PushContent(PushKind.VOIP, null, null, data, null, null, null, call.callId(), Priority.HIGH,
                call.ringUntil());
    }

    /** {@code {type: "call.ended", callId, reason}}, for {@link #ENDED_TTL}. */
    PushContent ended(CallStore.StoredCall call) {
        Map<String, String> data = new LinkedHashMap<>();
        data.put("type", "call.ended");
        data.put("callId", call.callId());
        data.put("reason", call.endReason());
        return new PushContent(PushKind.VOIP, null, null, data, null, null, null, call.callId(), Priority.HIGH,
                clock.instant().plus(ENDED_TTL));
    }

    /** The call.missed notification to the callee, routed like any notification. */
    private ObjectNode missedCall(CallStore.StoredCall call) {
        ObjectNode body = mapper.createObjectNode();
        body.putObject("to").putArray("users").add(call.callee());
        body.put("category", "call.missed");
        body.put("title", call.video() ? "Missed video call" : "Missed call");
        body.put("body", call.callerName() != null ? call.callerName() : call.callerId());
        ObjectNode data = body.putObject("data");
        data.put("type", "call.missed");
        data.put("callId", call.callId());
        data.put("callerId", call.callerId());
        if (call.callerName() != null) {
            data.put("callerName", call.callerName());
        }
        data.put("video", Boolean.toString(call.video()));
        return body;
    }

    private String event(CallStore.StoredCall call, List<CallStore.Route> routes, boolean ended, String reason) {
        ObjectNode data = mapper.createObjectNode();
        data.put("callId", call.callId());
        data.put("callee", call.callee());
        if (reason != null) {
            data.put("reason", reason);
        }
        ArrayNode list = data.putArray("routes");
        for (CallStore.Route r : routes) {
            ObjectNode route = list.addObject();
            if (r.installationId() != null) {
                route.put("installationId", r.installationId());
            }
            route.put("channel", r.channel());
            route.put("status", ended ? r.endStatus() : r.status());
            String why = ended ? r.endReason() : r.reason();
            if (why != null) {
                route.put("reason", why);
            }
        }
        return data.toString();
    }

    private void count(String appId, String event, List<CallStore.Route> routes, boolean ended) {
        for (CallStore.Route r : routes) {
            meters.counter("herald.calls.routes", "app", appId, "event", event, "channel", r.channel(),
                    "status", ended ? r.endStatus() : r.status()).increment();
        }
    }

    @PreDestroy
    @Override
    public void close() {
        executor.shutdown();
        try {
            executor.awaitTermination(5, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
