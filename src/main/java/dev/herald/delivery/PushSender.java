package dev.herald.delivery;

import java.util.concurrent.CompletableFuture;

/**
 * The port every push gateway adapter implements (APNs through pushy, FCM through firebase-admin).
 *
 * <p>{@link #send} never blocks the calling thread and never throws or completes exceptionally: every
 * outcome, transport failures included, is a {@link PushResult}. Implementations are thread-safe,
 * keep one long-lived client per credential (replaced when {@link GatewayCredentials#version()}
 * changes), and bound their own concurrency per app so one app's slow gateway slows no other.
 */
public interface PushSender extends AutoCloseable {

    CompletableFuture<PushResult> send(GatewayCredentials credentials, Push push);

    /**
     * Tells {@code listener} the app's id each time one of its gateways is back after an outage (its
     * circuit closed again). Called on a gateway thread: the listener must not block.
     */
    default void onRecovered(java.util.function.Consumer<String> listener) {
    }

    /** Closes every client, letting pushes in flight finish within a short grace period. Idempotent. */
    @Override
    void close();
}
