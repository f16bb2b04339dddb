package dev.herald.delivery;

import io.micronaut.transaction.TransactionOperations;
import io.micronaut.transaction.support.TransactionSynchronization;

import java.sql.Connection;

/** Work that must wait until the current transaction committed (events about rows it wrote). */
public final class AfterCommit {

    private AfterCommit() {
    }

    /** Runs {@code action} once the current transaction commits (never if it rolls back); at once outside one. */
    public static void run(TransactionOperations<Connection> transactions, Runnable action) {
        transactions.findTransactionStatus().ifPresentOrElse(status -> status.registerSynchronization(
                new TransactionSynchronization() {
                    @Override
                    public void afterCommit() {
                        action.run();
                    }
                }), action);
    }
}
