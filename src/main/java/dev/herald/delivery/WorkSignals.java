package dev.herald.delivery;

import io.micronaut.data.connection.jdbc.advice.DelegatingDataSource;
import jakarta.annotation.PreDestroy;
import jakarta.inject.Singleton;
import org.postgresql.PGConnection;
import org.postgresql.PGNotification;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import javax.sql.DataSource;
import java.sql.Connection;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.concurrent.locks.LockSupport;

/**
 * Wakes the routing and push workers when work arrives: at once on this node ({@link #wakeRouter()},
 * {@link #wakePushes()} after a commit), and on every other node through PostgreSQL's
 * {@code LISTEN/NOTIFY} ({@link #announce(Kind)} after the commit, coalesced). Workers also poll, so
 * a lost notification only delays work by a poll interval.
 */
@Singleton
public class WorkSignals implements AutoCloseable {

    private static final Logger LOG = LoggerFactory.getLogger(WorkSignals.class);
    private static final String CHANNEL = "herald_work";

    /** What kind of work arrived. */
    public enum Kind {
        ROUTE, PUSH
    }

    /** How often pending announcements are sent to the other nodes. */
    static final Duration ANNOUNCE_EVERY = Duration.ofMillis(20);

    final WorkSignal router = new WorkSignal();
    private volatile boolean routeToAnnounce;
    private volatile boolean pushToAnnounce;
    final WorkSignal pushes = new WorkSignal();
    private final DataSource dataSource;
    private volatile boolean running = true;
    private volatile Thread listener;

    WorkSignals(DataSource dataSource) {
        // the raw pool: this connection lives outside any transaction, for as long as the node
        this.dataSource = DelegatingDataSource.unwrapDataSource(dataSource);
    }

    /** Starts listening for other nodes' announcements (once; called by the workers when they start). */
    synchronized void listen() {
        if (listener == null) {
            listener = new Thread(this::listenLoop, "work-signals");
            listener.setDaemon(true);
            listener.start();
        }
    }

    /**
     * Tells every node, soon, that work of this kind is waiting: the listening connection sends one
     * {@code NOTIFY} per kind at most every {@link #ANNOUNCE_EVERY}, outside any request's
     * transaction (a transaction that notifies holds a lock through its commit that serializes every
     * other notifying commit, which would cap accepting at one commit at a time). Call after the work
     * committed.
     */
    public void announce(Kind kind) {
        if (listener == null) {
            listen();
        }
        if (kind == Kind.ROUTE) {
            routeToAnnounce = true;
        } else {
            pushToAnnounce = true;
        }
    }

    public void wakeRouter() {
        router.signal();
    }

    public void wakePushes() {
        pushes.signal();
    }

    private void listenLoop() {
        Duration pause = Duration.ofMillis(200);
        while (running) {
            try (Connection connection = dataSource.getConnection()) {
                connection.setAutoCommit(true);
                try (Statement statement = connection.createStatement()) {
                    statement.execute("LISTEN " + CHANNEL);
                }
                PGConnection pg = connection.unwrap(PGConnection.class);
                pause = Duration.ofMillis(200);
                while (running) {
                    sendAnnouncements(connection);
                    PGNotification[] notifications = pg.getNotifications((int) ANNOUNCE_EVERY.toMillis());
                    if (notifications == null) {
                        continue;
                    }
                    for (PGNotification n : notifications) {
                        if (Kind.ROUTE.name().equals(n.getParameter())) {
                            router.signal();
                        } else {
                            pushes.signal();
                        }
                    }
                }
            } catch (SQLException | RuntimeException e) {
                if (!running) {
                    return;
                }
                LOG.debug("Work notifications interrupted; listening again in {}", pause, e);
                // the workers poll meanwhile; nothing waits on this but latency
                router.signal();
                pushes.signal();
                LockSupport.parkNanos(pause.toNanos());
                pause = pause.multipliedBy(2).compareTo(Duration.ofSeconds(5)) > 0 ? Duration.ofSeconds(5) : pause.multipliedBy(2);
            }
        }
    }

    private void sendAnnouncements(Connection connection) throws SQLException {
        for (Kind kind : Kind.values()) {
            boolean pending = kind == Kind.ROUTE ? routeToAnnounce : pushToAnnounce;
            if (!pending) {
                continue;
            }
            if (kind == Kind.ROUTE) {
                routeToAnnounce = false;
            } else {
                pushToAnnounce = false;
            }
            try (var statement = connection.prepareStatement("SELECT pg_notify('" + CHANNEL + "', ?)")) {
                statement.setString(1, kind.name());
                statement.execute();
            }
        }
    }

    @Override
    @PreDestroy
    public void close() {
        running = false;
        Thread t = listener;
        if (t != null) {
            t.interrupt();
        }
    }
}
