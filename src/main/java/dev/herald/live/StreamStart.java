package dev.herald.live;

import dev.herald.inbox.InboxItemView;
import dev.herald.inbox.InboxStore;
import io.micronaut.transaction.TransactionOperations;
import jakarta.inject.Singleton;

import java.sql.Connection;
import java.util.ArrayList;
import java.util.List;

/** What a live stream opens with: the {@code unread} count, then the notifications missed after {@code Last-Event-ID}. */
@Singleton
class StreamStart {

    /** At most this many missed notifications are replayed; the inbox has the rest. */
    static final int REPLAY_LIMIT = 500;

    private final InboxStore inbox;
    private final TransactionOperations<Connection> transactions;

    StreamStart(InboxStore inbox, TransactionOperations<Connection> transactions) {
        this.inbox = inbox;
        this.transactions = transactions;
    }

    /** Reads PostgreSQL (blocking). {@code after}: the inbox id of the client's last event, or -1. */
    List<SseEvent> firstEvents(String userId, long after) {
        return transactions.executeRead(status -> {
            List<SseEvent> first = new ArrayList<>();
            first.add(SseEvent.of("unread", null, "{\"unread\":" + inbox.unreadCount(userId, null) + "}"));
            if (after > 0) {
                for (InboxStore.Item item : inbox.after(userId, after, REPLAY_LIMIT)) {
                    InboxItemView view = InboxItemView.of(item);
                    first.add(SseEvent.of("notification", view.id(), LiveEvents.json(view)));
                }
            }
            return first;
        });
    }
}
