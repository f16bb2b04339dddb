package dev.herald.delivery;

import dev.herald.notifications.Channel;
import dev.herald.notifications.NotificationRequest;
import dev.herald.notifications.Target;
import jakarta.inject.Singleton;

import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * Turns a notification's target into deliveries, a chunk at a time, inside the caller's transaction.
 * Users get the four routing steps: a queued push per device of the app (or {@code no_device}), and
 * for the steps Herald does not take yet (inbox, live, email) a {@code suppressed / not_configured}
 * delivery each. Devices and tags get a queued push per matching device. Channels the request left
 * out get no delivery at all.
 */
@Singleton
public class Router {

    /** Users routed per transaction. */
    static final int USER_CHUNK = 1_000;
    /** Devices routed per transaction. */
    static final int DEVICE_CHUNK = 5_000;

    private final DeliveryStore store;

    Router(DeliveryStore store) {
        this.store = store;
    }

    /** Where routing stands after a chunk: the cursor to go on from, or done. */
    public record Step(String cursor, boolean done) {
    }

    /** Routes the whole target at once (small targets, while accepting). */
    public void routeAll(String notificationId, String appId, NotificationRequest request, Instant now) {
        Step step = new Step("", false);
        while (!step.done()) {
            step = routeChunk(notificationId, appId, request, step.cursor(), now);
        }
    }

    /** Routes the next chunk after {@code cursor} ({@code ""} at the start). */
    public Step routeChunk(String notificationId, String appId, NotificationRequest request, String cursor,
                           Instant now) {
        Target target = request.target();
        boolean push = request.channels().contains(Channel.PUSH);
        switch (target.kind()) {
            case TAGS -> {
                if (!push) {
                    return new Step(cursor, true);
                }
                Optional<String> last = store.enqueueTagged(notificationId, appId, target.ids(), cursor,
                        DEVICE_CHUNK, now);
                return last.map(l -> new Step(l, false)).orElseGet(() -> new Step(cursor, true));
            }
            case DEVICES -> {
                List<String> chunk = nextIds(target.ids(), cursor, DEVICE_CHUNK);
                if (push && !chunk.isEmpty()) {
                    store.enqueueDevices(notificationId, appId, chunk, now);
                }
                return step(chunk, cursor, DEVICE_CHUNK);
            }
            case USERS -> {
                List<String> chunk = nextIds(target.ids(), cursor, USER_CHUNK);
                if (!chunk.isEmpty()) {
                    List<String> others = new ArrayList<>();
                    for (Channel channel : List.of(Channel.IN_APP, Channel.LIVE, Channel.EMAIL)) {
                        if (request.channels().contains(channel)) {
                            others.add(channel.wire());
                        }
                    }
                    store.enqueueUsers(notificationId, appId, chunk, push, others, "not_configured", now);
                }
                return step(chunk, cursor, USER_CHUNK);
            }
            default -> throw new IllegalStateException("unknown target " + target.kind());
        }
    }

    private static Step step(List<String> chunk, String cursor, int size) {
        if (chunk.isEmpty()) {
            return new Step(cursor, true);
        }
        return new Step(chunk.get(chunk.size() - 1), chunk.size() < size);
    }

    /** The next {@code size} ids after {@code cursor} in sorted order. */
    private static List<String> nextIds(List<String> ids, String cursor, int size) {
        return ids.stream().filter(id -> id.compareTo(cursor) > 0).sorted().limit(size).toList();
    }
}
