package dev.herald.api;

import java.sql.SQLException;

/** Recognises the PostgreSQL errors that mean something about the request rather than a fault. */
public final class SqlStates {

    private SqlStates() {
    }

    public static boolean isUniqueViolation(Throwable error) {
        return has(error, "23505");
    }

    public static boolean isForeignKeyViolation(Throwable error) {
        return has(error, "23503");
    }

    /** A deadlock or serialization failure: the transaction did nothing and may simply be run again. */
    public static boolean isRetryable(Throwable error) {
        return has(error, "40P01") || has(error, "40001");
    }

    /**
     * PostgreSQL could not be reached or went away (SQLState class 08, an administrator or crash
     * shutdown, a pooled connection found closed, or no connection within the pool's timeout): nothing
     * the client did, worth a retry.
     */
    public static boolean isUnavailable(Throwable error) {
        for (Throwable t = error; t != null; t = t.getCause()) {
            if (t instanceof java.sql.SQLTransientConnectionException || t instanceof java.net.ConnectException) {
                return true;
            }
            if (t instanceof SQLException sql && sql.getSQLState() != null
                    && (sql.getSQLState().startsWith("08") || sql.getSQLState().startsWith("57P"))) {
                return true;
            }
            // HikariCP's stand-in for a connection the server dropped mid-transaction carries no SQLState
            if (t instanceof SQLException sql && sql.getSQLState() == null && "Connection is closed".equals(sql.getMessage())) {
                return true;
            }
        }
        return false;
    }

    private static boolean has(Throwable error, String state) {
        for (Throwable t = error; t != null; t = t.getCause()) {
            if (t instanceof SQLException sql && state.equals(sql.getSQLState())) {
                return true;
            }
        }
        return false;
    }
}
