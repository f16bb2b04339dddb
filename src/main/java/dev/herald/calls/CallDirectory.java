package dev.herald.calls;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.github.benmanes.caffeine.cache.Cache;
import com.github.benmanes.caffeine.cache.Caffeine;
import com.google.common.hash.BloomFilter;
import com.google.common.hash.Funnels;
import dev.herald.api.JsonBodies;
import io.micronaut.context.annotation.Value;
import io.micronaut.data.connection.jdbc.advice.DelegatingDataSource;
import jakarta.annotation.PreDestroy;
import jakarta.inject.Singleton;
import org.postgresql.PGConnection;
import org.postgresql.PGNotification;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import javax.sql.DataSource;
import java.nio.charset.StandardCharsets;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;

/**
 * What this node knows without asking PostgreSQL, so that a call can ring before its round trip:
 * <ul>
 *   <li>the devices of callees called lately, as PostgreSQL last read them for a call, dropped as soon
 *       as PostgreSQL says one of them left the callee or lost a token ({@code herald_devices});</li>
 *   <li>every callId stored, in a Bloom filter loaded at start and kept by {@code herald_calls}: a
 *       callId the filter has never seen is certainly new, anything else goes the PostgreSQL way.</li>
 * </ul>
 * Both are only used while this node listens: when its listening connection drops, it forgets every
 * device and the filter until it listens again and has loaded the filter afresh. A read of devices that
 * began before a notice about its callee (or before the node listened again) is not kept.
 *
 * <p>PostgreSQL stays the judge: every call still reads the callee's devices and decides, under the
 * call's lock, whether it is new; {@link CallService} rings what memory missed and ends what memory
 * rang wrongly. The window left is the notification's way from a commit to this node (a millisecond
 * or two): a device that left its user in that window, or the same callId posted to another node in
 * that window, is rung and then sent {@code call.ended} or counted as a duplicate.
 */
@Singleton
class CallDirectory implements AutoCloseable {

    private static final Logger LOG = LoggerFactory.getLogger(CallDirectory.class);
    static final String DEVICES = "herald_devices";
    static final String CALLS = "herald_calls";
    /** The filter is rebuilt (with room for twice its calls) once its false positives pass this. */
    private static final double MOST_FALSE_POSITIVES = 0.01;

    private record Key(String appId, String userId) {
    }

    /** Where a read of a callee's devices began: the notices counted by then, and when. */
    record Read(long change, long nanos) {
    }

    /** How long a read may take and still be kept; notices are remembered this long. */
    private static final long READ_KEPT_NANOS = Duration.ofSeconds(30).toNanos();

    private final DataSource dataSource;
    private final ObjectMapper mapper;
    private final int expectedCalls;
    private final Cache<Key, List<CallStore.CalleeDevice>> devices;
    /** Callees with a notice in the last {@link #READ_KEPT_NANOS}: the notice's count and when it came. */
    private final java.util.concurrent.ConcurrentHashMap<Key, Read> gone = new java.util.concurrent.ConcurrentHashMap<>();
    /** Counts every notice about devices (and every new listening): a read remembers where it began. */
    private final AtomicLong changes = new AtomicLong();
    /** {@link #changes} when this node began to listen; -1 while it does not. */
    private volatile long listeningSince = -1;
    /** Every callId stored (as app + '/' + callId); null while not known. */
    private volatile BloomFilter<CharSequence> callIds;
    /** The filter being loaded to replace {@link #callIds}: calls rung meanwhile go into both. */
    private volatile BloomFilter<CharSequence> loading;
    private volatile boolean running = true;
    private final Thread listener;

    CallDirectory(DataSource dataSource, JsonBodies bodies,
                  @Value("${herald.calls.ring-from-memory:true}") boolean enabled,
                  @Value("${herald.calls.directory.max-callees:100000}") int maxCallees,
                  @Value("${herald.calls.directory.keep:1h}") Duration keep,
                  @Value("${herald.calls.directory.expected-calls:1000000}") int expectedCalls) {
        // the raw pool: this connection lives outside any transaction, for as long as the node
        this.dataSource = DelegatingDataSource.unwrapDataSource(dataSource);
        this.mapper = bodies.mapper();
        this.expectedCalls = expectedCalls;
        this.devices = Caffeine.newBuilder().maximumSize(maxCallees).expireAfterWrite(keep).build();
        this.listener = new Thread(this::listenLoop, "call-directory");
        this.listener.setDaemon(true);
        if (enabled) {
            listener.start();
        }
    }

    /** Whether calls may ring from memory now: listening, and the callIds loaded. */
    boolean ready() {
        return listeningSince >= 0 && callIds != null;
    }

    /** The callee's devices as last read, if this node knows them and may trust them. */
    Optional<List<CallStore.CalleeDevice>> devices(String appId, String userId) {
        if (!ready()) {
            return Optional.empty();
        }
        return Optional.ofNullable(devices.getIfPresent(new Key(appId, userId)));
    }

    /** Call before reading a callee's devices; hand the answer to {@link #remember}. */
    Read readBegins() {
        return new Read(listeningSince < 0 ? -1 : changes.get(), System.nanoTime());
    }

    /**
     * Keeps the callee's devices as read from PostgreSQL, unless a notice about them came since the read
     * began (the read may not have seen that change), this node listened again since, or the read was slow.
     */
    void remember(String appId, String userId, List<CallStore.CalleeDevice> read, Read began) {
        if (outlived(began) || System.nanoTime() - began.nanos() > READ_KEPT_NANOS) {
            return;
        }
        Key key = new Key(appId, userId);
        List<CallStore.CalleeDevice> copy = List.copyOf(read);
        // checked again inside: a notice, or everything dropped, may come while this lands
        devices.asMap().compute(key, (k, old) -> {
            Read notice = gone.get(k);
            return outlived(began) || notice != null && notice.change() > began.change() ? null : copy;
        });
    }

    /** Whether this node stopped listening, or dropped every callee, since the read began. */
    private boolean outlived(Read began) {
        long since = listeningSince;
        return began.change() < 0 || since < 0 || since > began.change();
    }

    /**
     * Whether this callId is certainly new, claiming it when it is (a second post of it, on this node,
     * then goes the PostgreSQL way). False when it may have been used, or while the filter is not known.
     */
    boolean claimNew(String appId, String callId) {
        BloomFilter<CharSequence> filter = callIds;
        if (filter == null || listeningSince < 0) {
            return false;
        }
        String key = callKey(appId, callId);
        synchronized (this) {
            if (filter != callIds || filter.mightContain(key)) {
                return false;
            }
            stored(key);
            return true;
        }
    }

    /** Whether this callId may have been used (or memory does not know yet). */
    boolean mayBeUsed(String appId, String callId) {
        BloomFilter<CharSequence> filter = callIds;
        return filter == null || filter.mightContain(callKey(appId, callId));
    }

    /** A callId as the filter holds it (as the load's query builds it too). */
    private static String callKey(String appId, String callId) {
        return appId + '/' + callId;
    }

    /** A callId stored (or claimed): into the filter, and into the one being loaded. */
    private synchronized void stored(String key) {
        BloomFilter<CharSequence> filter = callIds;
        if (filter != null) {
            filter.put(key);
        }
        BloomFilter<CharSequence> next = loading;
        if (next != null) {
            next.put(key);
        }
    }

    /** Drops the callee's devices at once, as their notice will (for changes this node committed itself). */
    void forget(String appId, String userId) {
        changed(new Key(appId, userId));
    }

    private void changed(Key key) {
        // the notice first, then the drop: a read that lands in between sees the notice
        gone.put(key, new Read(changes.incrementAndGet(), System.nanoTime()));
        devices.invalidate(key);
    }

    /** Forgets notices older than any read still kept. */
    private void pruneNotices() {
        long now = System.nanoTime();
        gone.values().removeIf(n -> now - n.nanos() > 2 * READ_KEPT_NANOS);
    }

    /** Drops every callee's devices, and every read that began before. */
    private void forgetDevices() {
        listeningSince = changes.incrementAndGet();
        devices.invalidateAll();
    }

    private void forgetAll() {
        listeningSince = -1;
        changes.incrementAndGet();
        devices.invalidateAll();
        synchronized (this) {
            callIds = null;
            loading = null;
        }
    }

    private void listenLoop() {
        Duration pause = Duration.ofMillis(200);
        while (running) {
            try (Connection connection = dataSource.getConnection()) {
                connection.setAutoCommit(true);
                try (Statement statement = connection.createStatement()) {
                    statement.execute("LISTEN " + DEVICES + "; LISTEN " + CALLS);
                }
                PGConnection pg = connection.unwrap(PGConnection.class);
                // every notice from here on arrives
                forgetDevices();
                load(connection, pg);
                pause = Duration.ofMillis(200);
                while (running) {
                    PGNotification[] notifications = pg.getNotifications(1_000);
                    handle(notifications);
                    pruneNotices();
                    BloomFilter<CharSequence> filter = callIds;
                    if (filter != null && filter.expectedFpp() > MOST_FALSE_POSITIVES) {
                        load(connection, pg);
                    }
                }
            } catch (SQLException | RuntimeException e) {
                forgetAll();
                if (!running) {
                    return;
                }
                LOG.warn("Calls ring through PostgreSQL only until the call directory listens again in {}: {}", pause,
                        e.toString());
                LockSupport.parkNanos(pause.toNanos());
                pause = pause.multipliedBy(2).compareTo(Duration.ofSeconds(5)) > 0 ? Duration.ofSeconds(5) : pause.multipliedBy(2);
            }
        }
    }

    private void handle(PGNotification[] notifications) throws SQLException {
        if (notifications == null) {
            return;
        }
        for (PGNotification n : notifications) {
            if (CALLS.equals(n.getName())) {
                JsonNode call = json(n.getParameter());
                stored(callKey(call.path(0).asText(), call.path(1).asText()));
            } else if ("*".equals(n.getParameter())) {
                forgetDevices();
            } else {
                JsonNode callee = json(n.getParameter());
                changed(new Key(callee.path(0).asText(), callee.path(1).asText()));
            }
        }
    }

    private JsonNode json(String payload) throws SQLException {
        try {
            return mapper.readTree(payload);
        } catch (java.io.IOException e) {
            throw new SQLException("Unreadable notification: " + payload, e);
        }
    }

    /**
     * Loads every stored callId into a new filter (the current one, if any, answers meanwhile; calls
     * claimed meanwhile go into both, calls stored meanwhile arrive as notices once it is loaded).
     */
    private void load(Connection connection, PGConnection pg) throws SQLException {
        long count;
        try (Statement s = connection.createStatement(); ResultSet rs = s.executeQuery("SELECT count(*) FROM calls")) {
            rs.next();
            count = rs.getLong(1);
        }
        BloomFilter<CharSequence> next = BloomFilter.create(Funnels.stringFunnel(StandardCharsets.UTF_8),
                Math.max(expectedCalls, 2 * count), 0.001);
        loading = next;
        long started = System.nanoTime();
        long loaded = 0;
        connection.setAutoCommit(false); // a cursor, fetched in pages
        try (Statement s = connection.createStatement()) {
            s.setFetchSize(10_000);
            try (ResultSet rs = s.executeQuery("SELECT app_id || '/' || call_id FROM calls")) {
                long lastReport = started;
                while (rs.next()) {
                    next.put(rs.getString(1));
                    loaded++;
                    if (System.nanoTime() - lastReport > 5_000_000_000L) {
                        lastReport = System.nanoTime();
                        LOG.info("Call directory: {} of about {} callIds loaded", loaded, count);
                    }
                }
            }
            connection.commit();
        } finally {
            connection.setAutoCommit(true);
        }
        // notices that came while loading (pgjdbc kept them) reach the new filter before it answers
        handle(pg.getNotifications());
        synchronized (this) {
            callIds = next;
            loading = null;
        }
        LOG.info("Call directory: {} callIds loaded in {} ms; calls ring from memory", loaded,
                (System.nanoTime() - started) / 1_000_000);
    }

    @PreDestroy
    @Override
    public void close() {
        running = false;
        listener.interrupt();
    }
}
