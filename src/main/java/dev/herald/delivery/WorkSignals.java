package dev.herald.delivery;

import io.micronaut.data.jdbc.runtime.JdbcOperations;
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
 * {@code LISTEN/NOTIFY} ({@link #announce(Kind)} inside the transaction that made the work, delivered
 * when it commits). Workers also poll, so a lost notification only delays work by a poll interval.
 */
@Singleton
public class WorkSignals implements AutoCloseable {

    private static final Logger LOG = LoggerFactory.getLogger(WorkSignals.class);
    private static final String CHANNEL = "herald_work";

    /** What kind of work arrived. */
    public enum Kind {
        ROUTE, PUSH
    }

    final WorkSignal router = new WorkSignal();
    final WorkSignal pushes = new WorkSignal();
    private final JdbcOperations jdbc;
    private final DataSource dataSource;
    private volatile boolean running = true;
    private Thread listener;

    WorkSignals(JdbcOperations jdbc, DataSource dataSource) {
        this.jdbc = jdbc;
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

    /** Tells every node, once the current transaction commits, that work of this kind is waiting. */
    public void announce(Kind kind) {
        jdbc.prepareStatement("SELECT pg_notify('" + CHANNEL + "', ?)", ps -> {
            ps.setString(1, kind.name());
            return ps.execute();
        });
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
                    PGNotification[] notifications = pg.getNotifications(500);
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
