package dev.herald.live;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.herald.api.JsonBodies;
import io.lettuce.core.Range;
import io.lettuce.core.RedisFuture;
import io.lettuce.core.pubsub.RedisPubSubAdapter;
import io.lettuce.core.pubsub.StatefulRedisPubSubConnection;
import io.micronaut.context.annotation.Value;
import io.micronaut.http.sse.Event;
import io.micronaut.scheduling.annotation.Scheduled;
import jakarta.annotation.PreDestroy;
import jakarta.inject.Singleton;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Sinks;

import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The live streams held by this node, and presence in Redis for every node.
 *
 * <p>Each stream is a Reactor sink on this node (no thread per stream). A user's presence is the Redis
 * sorted set {@code herald:{u:<userId>}:streams} (the hash tag keeps a user's keys on one Redis Cluster
 * slot): one member per open stream, {@code <node>/<stream>}, scored with its expiry; the node refreshes
 * its members every 20 s, so a node that dies leaves no one present after {@link #TTL}. {@code PUT
 * /v1/presence} adds the member {@code api} for {@link #TTL}. A live event for a user goes to the streams
 * on this node directly and to every other node holding one of the user's streams over its Redis
 * channel {@code herald:node:<node>}; a large batch of events (a fan-out) goes to every node at once over
 * {@link #BROADCAST}. Redis unreachable: everyone counts as away (pushes go out) and
 * nothing here throws.
 */
@Singleton
public class LiveHub implements AutoCloseable {

    private static final Logger LOG = LoggerFactory.getLogger(LiveHub.class);
    static final Duration TTL = Duration.ofSeconds(60);
    /** Marks the presence member of a stream opened with {@code ?ack=true}. */
    private static final String ACK_SUFFIX = "/ack";
    private static final Duration REDIS_WAIT = Duration.ofMillis(500);

    private final String node = UUID.randomUUID().toString().substring(0, 12);
    /** Each user's streams on this node (an array, replaced on each change: most users hold one). */
    private final Map<String, Stream[]> streams = new ConcurrentHashMap<>();
    private final AtomicLong streamIds = new AtomicLong();
    /** Streams open on this node ({@code herald_live_streams}). */
    private final java.util.concurrent.atomic.AtomicInteger open = new java.util.concurrent.atomic.AtomicInteger();
    private final io.lettuce.core.cluster.api.async.RedisClusterAsyncCommands<String, String> redis;
    private final dev.herald.redis.Redis client;
    private volatile StatefulRedisPubSubConnection<String, String> subscription;
    private final ObjectMapper mapper;
    private final Clock clock;
    private final Duration ping;
    private final dev.herald.ops.OncePerMinute warnings = new dev.herald.ops.OncePerMinute();
    /** After a failed presence read, users count as away without asking Redis until then ({@code nanoTime}). */
    private volatile long unreachableUntil;
    private static final Duration UNREACHABLE_PAUSE = Duration.ofSeconds(5);
    /** How long a user's last-seen time is kept. */
    private static final io.lettuce.core.SetArgs SEEN_TTL = io.lettuce.core.SetArgs.Builder.ex(Duration.ofDays(30));

    /** One open stream of a user on this node. */
    record Stream(String id, String userId, Outlet outlet, long openedAt) {
    }

    /**
     * Where a stream's events go: its connection ({@link StreamChannels}), or a Reactor sink that
     * Micronaut writes from ({@link #open}).
     */
    interface Outlet {
        /** The event loop {@link #sendHere} must run on; null when it may be called from any thread. */
        java.util.concurrent.Executor loop();

        /** Sends one event, on {@link #loop()}. */
        void sendHere(SseEvent event);

        /** Sends {@code last} and ends the stream. */
        void end(SseEvent last);
    }

    /** A stream that Micronaut serves from a unicast sink. */
    private static final class SinkOutlet implements Outlet {
        // one subscriber per stream: a unicast sink, whose queue starts at 8 slots (Reactor's default is
        // 256, about 1 KB per idle stream) and grows only while the client is slow
        private final Sinks.Many<Event<String>> sink =
                Sinks.many().unicast().onBackpressureBuffer(reactor.util.concurrent.Queues.<Event<String>>unbounded(8).get());

        @Override
        public java.util.concurrent.Executor loop() {
            return null;
        }

        // many threads publish (routing, calls, inbox changes, the ping ticker, relays from other nodes);
        // a sink refuses emissions that overlap, so they take turns here
        @Override
        public synchronized void sendHere(SseEvent event) {
            sink.tryEmitNext(event.micronaut());
        }

        @Override
        public synchronized void end(SseEvent last) {
            sink.tryEmitNext(last.micronaut());
            sink.tryEmitComplete();
        }
    }

    /**
     * Events for many streams, handed to each event loop in tasks of {@link #PER_TASK} (a fan-out's
     * 10,000 events make 40 tasks, not 10,000; the loops start writing while the rest are added).
     */
    private static final class Batch {
        private static final int PER_TASK = 256;
        // sized as they fill: most batches are one event (a call, an unread count)
        private final Map<java.util.concurrent.Executor, List<Object>> byLoop = new HashMap<>();

        void add(Stream stream, SseEvent event) {
            java.util.concurrent.Executor loop = stream.outlet().loop();
            if (loop == null) {
                stream.outlet().sendHere(event);
                return;
            }
            List<Object> work = byLoop.computeIfAbsent(loop, l -> new ArrayList<>());
            work.add(stream.outlet());
            work.add(event);
            if (work.size() == 2 * PER_TASK) {
                submit(loop, work);
                byLoop.remove(loop);
            }
        }

        void send() {
            byLoop.forEach(Batch::submit);
            byLoop.clear();
        }

        private static void submit(java.util.concurrent.Executor loop, List<Object> work) {
            try {
                loop.execute(() -> {
                    for (int i = 0; i < work.size(); i += 2) {
                        ((Outlet) work.get(i)).sendHere((SseEvent) work.get(i + 1));
                    }
                });
            } catch (java.util.concurrent.RejectedExecutionException stopping) {
                // the server is stopping: its streams are told to reconnect elsewhere
            }
        }
    }

    private final io.micronaut.context.BeanProvider<io.micronaut.http.netty.channel.EventLoopGroupRegistry> eventLoops;
    /**
     * From this many events on ({@code herald.live.broadcast-from}, 100), {@link #publishAll} relays them to
     * every node instead of looking up each user's.
     */
    private final int broadcastFrom;

    LiveHub(dev.herald.redis.Redis client, JsonBodies bodies, Clock clock,
            @Value("${herald.stream.ping:30s}") Duration ping,
            io.micronaut.context.BeanProvider<io.micronaut.http.netty.channel.EventLoopGroupRegistry> eventLoops,
            @Value("${herald.live.broadcast-from:100}") int broadcastFrom,
            io.micrometer.core.instrument.MeterRegistry meters) {
        this.eventLoops = eventLoops;
        meters.gauge("herald.live.streams", open);
        this.broadcastFrom = broadcastFrom;
        this.redis = client.async();
        this.mapper = bodies.mapper();
        this.clock = clock;
        this.ping = ping;
        this.client = client;
        subscribe();
        this.pinger = Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, "stream-ping");
            t.setDaemon(true);
            return t;
        });
        pinger.scheduleAtFixedRate(this::pingAll, ping.toMillis(), ping.toMillis(), TimeUnit.MILLISECONDS);
    }

    private final ScheduledExecutorService pinger;

    public String node() {
        return node;
    }

    /**
     * Opens a stream for the user that Micronaut serves: {@code replay} first, then live events and a
     * ping every {@code herald.stream.ping}, until the client goes away (then the stream leaves presence
     * at once).
     */
    public Flux<Event<String>> open(String userId, List<SseEvent> replay, boolean ack) {
        SinkOutlet outlet = new SinkOutlet();
        Stream stream = attach(userId, ack, outlet);
        return Flux.concat(Flux.fromIterable(replay).map(SseEvent::micronaut), outlet.sink.asFlux())
                .doFinally(signal -> detach(stream));
    }

    /** Adds a stream of the user, whose events go to {@code outlet}, and makes the user present. */
    Stream attach(String userId, boolean ack, Outlet outlet) {
        Stream stream = new Stream(node + "/" + streamIds.incrementAndGet() + (ack ? ACK_SUFFIX : ""), userId,
                outlet, clock.millis());
        streams.compute(userId, (u, mine) -> {
            if (mine == null) {
                return new Stream[]{stream};
            }
            Stream[] more = java.util.Arrays.copyOf(mine, mine.length + 1);
            more[mine.length] = stream;
            return more;
        });
        open.incrementAndGet();
        refresh(userId, stream.id());
        return stream;
    }

    /** Removes a stream whose client went away; the user stops counting as present through it at once. */
    void detach(Stream stream) {
        streams.computeIfPresent(stream.userId(), (u, mine) -> {
            Stream[] fewer = java.util.Arrays.stream(mine).filter(s -> s != stream).toArray(Stream[]::new);
            if (fewer.length < mine.length) {
                open.decrementAndGet();
            }
            return fewer.length == 0 ? null : fewer;
        });
        guard(() -> {
            redis.zrem(key(stream.userId()), stream.id());
            redis.set(seenKey(stream.userId()), clock.instant().toString(), SEEN_TTL);
        });
    }

    private static boolean holds(Stream[] mine, Stream stream) {
        if (mine != null) {
            for (Stream s : mine) {
                if (s == stream) {
                    return true;
                }
            }
        }
        return false;
    }

    /** {@code PUT /v1/presence}: the user counts as present for {@link #TTL}. */
    public void touch(String userId) {
        refresh(userId, "api");
    }


    /** How a user can be reached live: away, present, or present only on streams that acknowledge each event. */
    public enum Reach {
        AWAY, PRESENT, PRESENT_ACK
    }

    /** Each user's {@link Reach} (any node); Redis unreachable: everyone is away. */
    public Map<String, Reach> presence(List<String> userIds) {
        return lookUp(userIds).reach();
    }

    /**
     * Asks for each user's {@link Reach} now and answers it on {@link PresenceLookup#reach()}, so that
     * a caller can do other work (a database statement) while Redis answers.
     */
    public PresenceLookup lookUp(List<String> userIds) {
        Map<String, Reach> reach = new HashMap<>();
        if (System.nanoTime() < unreachableUntil) {
            // Redis failed a moment ago: do not make every notification (or call) wait for it again
            userIds.forEach(u -> reach.put(u, Reach.AWAY));
            return new PresenceLookup(reach, List.of(), List.of());
        }
        long now = clock.millis();
        // a stream of the user on this node that does not acknowledge settles it without asking Redis
        // (presence is any stream, on any node; acknowledging is all of them)
        List<String> ask = new ArrayList<>(userIds.size());
        for (String user : userIds) {
            if (anyWithoutAck(streams.get(user))) {
                reach.put(user, Reach.PRESENT);
            } else {
                ask.add(user);
            }
        }
        List<RedisFuture<List<String>>> members = new ArrayList<>(ask.size());
        try {
            for (String user : ask) {
                members.add(redis.zrangebyscore(key(user), Range.create(now, Double.POSITIVE_INFINITY)));
            }
        } catch (RuntimeException e) {
            away(ask, reach, e);
            return new PresenceLookup(reach, List.of(), List.of());
        }
        return new PresenceLookup(reach, ask, members);
    }

    /** A presence look-up under way: {@link #reach()} waits (at most 500 ms) for Redis's answers. */
    public final class PresenceLookup {

        private final Map<String, Reach> reach;
        private final List<String> asked;
        private final List<RedisFuture<List<String>>> members;

        private PresenceLookup(Map<String, Reach> reach, List<String> asked, List<RedisFuture<List<String>>> members) {
            this.reach = reach;
            this.asked = asked;
            this.members = members;
        }

        /** Each user's reach; users Redis did not answer for count as away. */
        public Map<String, Reach> reach() {
            try {
                for (int i = 0; i < members.size(); i++) {
                    List<String> live = members.get(i).get(REDIS_WAIT.toMillis(), TimeUnit.MILLISECONDS);
                    Reach r = Reach.AWAY;
                    if (live != null && !live.isEmpty()) {
                        r = live.stream().allMatch(m -> m.endsWith(ACK_SUFFIX)) ? Reach.PRESENT_ACK : Reach.PRESENT;
                    }
                    reach.put(asked.get(i), r);
                }
            } catch (Exception e) {
                if (e instanceof InterruptedException) {
                    Thread.currentThread().interrupt();
                }
                away(asked, reach, e);
            }
            return reach;
        }
    }

    private void away(List<String> asked, Map<String, Reach> reach, Exception e) {
        unreachableUntil = System.nanoTime() + UNREACHABLE_PAUSE.toNanos();
        warn("presence unknown, users count as away", e);
        asked.forEach(u -> reach.put(u, Reach.AWAY));
    }

    private static boolean anyWithoutAck(Stream[] mine) {
        if (mine != null) {
            for (Stream s : mine) {
                if (!s.id().endsWith(ACK_SUFFIX)) {
                    return true;
                }
            }
        }
        return false;
    }

    /** {@code GET /v1/users/{userId}/presence}. */
    public PresenceView presence(String userId) {
        long now = clock.millis();
        try {
            long connections = redis.zcount(key(userId), Range.create(now, Double.POSITIVE_INFINITY))
                    .get(REDIS_WAIT.toMillis(), TimeUnit.MILLISECONDS);
            String seen = redis.get(seenKey(userId)).get(REDIS_WAIT.toMillis(), TimeUnit.MILLISECONDS);
            Double api = redis.zscore(key(userId), "api").get(REDIS_WAIT.toMillis(), TimeUnit.MILLISECONDS);
            long streamsOnly = api != null && api >= now ? connections - 1 : connections;
            return new PresenceView(connections > 0, streamsOnly, connections > 0 ? clock.instant()
                    : seen == null ? null : Instant.parse(seen));
        } catch (Exception e) {
            warn("presence unknown", e);
            throw dev.herald.api.ApiException.unavailable("Presence is unknown: Redis is unreachable");
        }
    }

    /**
     * Sends an event to the user's streams wherever they are: this node's at once, other nodes' through
     * Redis. {@code id} may be null (the event then leaves the client's Last-Event-ID as it was).
     */
    public void publish(String userId, String name, String id, String json) {
        publish(new Outgoing(userId, name, id, json, 0));
    }

    private void publish(Outgoing e) {
        String userId = e.userId();
        Batch batch = new Batch();
        deliver(e, batch);
        batch.send();
        long now = clock.millis();
        guard(() -> redis.zrangebyscore(key(userId), Range.create(now, Double.POSITIVE_INFINITY)).thenAccept(members -> {
            Set<String> nodes = new HashSet<>();
            for (String m : members) {
                int slash = m.indexOf('/');
                if (slash > 0 && !m.substring(0, slash).equals(node)) {
                    nodes.add(m.substring(0, slash));
                }
            }
            if (!nodes.isEmpty()) {
                String text = relayMessage(mapper.createObjectNode(), e).toString();
                nodes.forEach(n -> redis.publish(channel(n), text));
            }
        }));
    }

    /**
     * A live event for one user. {@code id} may be null, as for {@link #publish}; {@code openedFrom}
     * (epoch milliseconds) limits it to the streams opened then or later (0: every stream).
     */
    public record Outgoing(String userId, String name, String id, String json, long openedFrom) {
    }

    private static ObjectNode relayMessage(ObjectNode message, Outgoing e) {
        message.put("userId", e.userId()).put("name", e.name()).put("data", e.json());
        if (e.id() != null) {
            message.put("id", e.id());
        }
        if (e.openedFrom() > 0) {
            message.put("from", e.openedFrom());
        }
        return message;
    }

    private static Outgoing relayed(com.fasterxml.jackson.databind.JsonNode message) {
        return new Outgoing(message.path("userId").asText(), message.path("name").asText(),
                message.hasNonNull("id") ? message.get("id").asText() : null, message.path("data").asText(),
                message.path("from").asLong(0));
    }

    /**
     * Sends many users' events: this node's streams at once, and (from {@link #broadcastFrom} events on)
     * every other node's through one Redis message per {@link #RELAY_SLICE} events on the channel all nodes
     * hear (each node passes on the events of users it holds streams for), instead of a look-up per user.
     */
    public void publishAll(List<Outgoing> events) {
        if (events.size() < broadcastFrom) {
            // a few events: each to the nodes holding the user's streams, as Redis says
            events.forEach(this::publish);
            return;
        }
        Batch batch = new Batch();
        events.forEach(e -> deliver(e, batch));
        batch.send();
        if (!othersListening()) {
            return;
        }
        for (int from = 0; from < events.size(); from += RELAY_SLICE) {
            var slice = mapper.createArrayNode();
            for (Outgoing e : events.subList(from, Math.min(events.size(), from + RELAY_SLICE))) {
                relayMessage(slice.addObject(), e);
            }
            String text = node + "\n" + slice;
            guard(() -> redis.publish(BROADCAST, text));
        }
    }

    /** Events per message on {@link #BROADCAST}. */
    static final int RELAY_SLICE = 500;
    /** The channel every node subscribes to: {@code <origin node>\n<JSON array of events>}. */
    static final String BROADCAST = "herald:nodes:live";

    /**
     * Waits, at most {@code max}, until the HTTP server's event loops ran what was handed to them so far:
     * the events just published are written to their connections. Routing a large fan-out calls this
     * before storing it, so that the writes do not wait for CPU behind the storing.
     */
    public void awaitWritten(Duration max) {
        var registry = eventLoops.find(null);
        if (registry.isEmpty()) {
            return;
        }
        List<io.netty.util.concurrent.Future<?>> marks = new ArrayList<>();
        for (io.netty.util.concurrent.EventExecutor loop : registry.get().getDefaultEventLoopGroup()) {
            marks.add(loop.submit(() -> { }));
        }
        long deadline = System.nanoTime() + max.toNanos();
        try {
            for (var mark : marks) {
                if (!mark.await(Math.max(0, deadline - System.nanoTime()), TimeUnit.NANOSECONDS)) {
                    return;
                }
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /**
     * Whether another node subscribes to {@link #BROADCAST} (a single Herald skips serialising a fan-out's
     * events for no one). On a Redis Cluster, where a server counts only its own subscribers, and when
     * Redis does not answer: assumed so.
     */
    private boolean othersListening() {
        if (client.isCluster()) {
            return true;
        }
        try {
            Long listening = redis.pubsubNumsub(BROADCAST).get(REDIS_WAIT.toMillis(), TimeUnit.MILLISECONDS).get(BROADCAST);
            return listening == null || listening > (subscription != null ? 1 : 0);
        } catch (Exception e) {
            return true;
        }
    }

    private void broadcastReceived(String message) {
        int newline = message.indexOf('\n');
        if (newline < 0 || message.substring(0, newline).equals(node)) {
            return;
        }
        try {
            Batch batch = new Batch();
            for (var event : mapper.readTree(message.substring(newline + 1))) {
                if (streams.containsKey(event.path("userId").asText())) {
                    deliver(relayed(event), batch);
                }
            }
            batch.send();
        } catch (Exception e) {
            LOG.warn("Live events relayed through Redis could not be read: {}", e.toString());
        }
    }

    private void deliver(Outgoing e, Batch batch) {
        Stream[] mine = streams.get(e.userId());
        if (mine == null) {
            return;
        }
        SseEvent event = SseEvent.of(e.name(), e.id(), e.json());
        for (Stream s : mine) {
            if (s.openedAt() >= e.openedFrom()) {
                batch.add(s, event);
            }
        }
    }

    private void relayed(String message) {
        try {
            Batch batch = new Batch();
            deliver(relayed(mapper.readTree(message)), batch);
            batch.send();
        } catch (Exception e) {
            LOG.warn("A live event relayed through Redis could not be read: {}", e.toString());
        }
    }

    /** One ticker for every stream on this node (not a timer per stream): a {@code ping} each {@code herald.stream.ping}. */
    private void pingAll() {
        SseEvent ping = SseEvent.of("ping", null, "{}");
        Batch batch = new Batch();
        streams.forEach((user, mine) -> {
            for (Stream s : mine) {
                batch.add(s, ping);
            }
        });
        batch.send();
    }

    /**
     * Subscribes to this node's relay channel (once connected, lettuce re-subscribes by itself after a
     * reconnect; when Redis was away at startup, the heartbeat tries again).
     */
    private synchronized void subscribe() {
        if (subscription != null) {
            return;
        }
        try {
            StatefulRedisPubSubConnection<String, String> sub = client.connectPubSub();
            sub.addListener(new RedisPubSubAdapter<>() {
                @Override
                public void message(String channel, String message) {
                    if (BROADCAST.equals(channel)) {
                        broadcastReceived(message);
                    } else {
                        relayed(message);
                    }
                }
            });
            sub.sync().subscribe(channel(node), BROADCAST);
            subscription = sub;
        } catch (RuntimeException e) {
            warn("live events from other nodes cannot reach this one until Redis is back", e);
        }
    }

    /** Keeps this node's streams present: every 20 s, each stream's expiry moves to now + {@link #TTL}. */
    @Scheduled(fixedDelay = "20s", initialDelay = "20s")
    void heartbeat() {
        subscribe();
        long expiry = clock.millis() + TTL.toMillis();
        streams.forEach((user, mine) -> java.util.Arrays.stream(mine).forEach(s -> guard(() -> {
            // XX: only moves an existing member's expiry, so a stream closed meanwhile stays gone; a member
            // missing while its stream is still open (Redis restarted) is added again
            redis.zadd(key(user), io.lettuce.core.ZAddArgs.Builder.xx().ch(), expiry, s.id()).thenAccept(changed -> {
                if (changed == 0 && holds(streams.get(user), s)) {
                    redis.zadd(key(user), expiry, s.id());
                }
            });
            redis.pexpire(key(user), TTL.toMillis());
        })));
    }

    private void refresh(String userId, String member) {
        guard(() -> {
            redis.zadd(key(userId), clock.millis() + TTL.toMillis(), member);
            redis.pexpire(key(userId), TTL.toMillis());
            redis.set(seenKey(userId), clock.instant().toString(), SEEN_TTL);
            redis.zremrangebyscore(key(userId), Range.create(Double.NEGATIVE_INFINITY, (double) clock.millis()));
        });
    }

    private void guard(Runnable redisWork) {
        try {
            redisWork.run();
        } catch (RuntimeException e) {
            warn("presence not updated", e);
        }
    }

    private void warn(String what, Exception e) {
        if (warnings.due()) {
            LOG.warn("Redis: {}: {}", what, e.toString());
        }
    }

    static String key(String userId) {
        return "herald:{u:" + userId + "}:streams";
    }

    static String seenKey(String userId) {
        return "herald:{u:" + userId + "}:seen";
    }

    static String channel(String node) {
        return "herald:node:" + node;
    }

    /** Tells every stream on this node to reconnect (to another node), then closes them. */
    @PreDestroy
    @Override
    public void close() {
        streams.forEach((user, mine) -> {
            for (Stream s : mine) {
                s.outlet().end(new SseEvent("reconnect", null, "{}",
                        1_000 + java.util.concurrent.ThreadLocalRandom.current().nextLong(9_000)));
            }
        });
        pinger.shutdownNow();
        StatefulRedisPubSubConnection<String, String> sub = subscription;
        if (sub != null) {
            sub.close();
        }
    }
}
