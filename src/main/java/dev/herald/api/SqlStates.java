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

    private static boolean has(Throwable error, String state) {
        for (Throwable t = error; t != null; t = t.getCause()) {
            if (t instanceof SQLException sql && state.equals(sql.getSQLState())) {
                return true;
            }
        }
        return false;
    }
}
