package dev.herald.delivery;

import dev.herald.notifications.Channel;
import dev.herald.notifications.NotificationRequest;
import dev.herald.notifications.Target;
import jakarta.inject.Singleton;

import java.time.Instant;
import java.util.ArrayList;
import java.util.List;

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

    /**
     * Where routing stands after a chunk: the cursor to go on from, or done; and the pushes routed,
     * leased to this node until {@code leasedUntil} for it to send at once, after the commit.
     */
    public record Step(String cursor, boolean done, List<DeliveryStore.ClaimedPush> leased) {
    }

    /** Routes the whole target at once (small targets, while accepting); answers the pushes leased. */
    public List<DeliveryStore.ClaimedPush> routeAll(String notificationId, String appId, NotificationRequest request,
                                                    Instant now, Instant leasedUntil) {
        List<DeliveryStore.ClaimedPush> leased = new ArrayList<>();
        Step step = new Step("", false, List.of());
        while (!step.done()) {
            step = routeChunk(notificationId, appId, request, step.cursor(), now, leasedUntil);
            leased.addAll(step.leased());
        }
        return leased;
    }

    /** Routes the next chunk after {@code cursor} ({@code ""} at the start). */
    public Step routeChunk(String notificationId, String appId, NotificationRequest request, String cursor,
                           Instant now, Instant leasedUntil) {
        Target target = request.target();
        boolean push = request.channels().contains(Channel.PUSH);
        switch (target.kind()) {
            case TAGS -> {
                if (!push) {
                    return new Step(cursor, true, List.of());
                }
                DeliveryStore.Routed routed = store.enqueueTagged(notificationId, appId, target.ids(), cursor,
                        DEVICE_CHUNK, now, leasedUntil);
                return routed.lastInstallation() == null ? new Step(cursor, true, List.of())
                        : new Step(routed.lastInstallation(), false, routed.leased());
            }
            case DEVICES -> {
                List<String> chunk = nextIds(target.ids(), cursor, DEVICE_CHUNK);
                List<DeliveryStore.ClaimedPush> leased = push && !chunk.isEmpty()
                        ? store.enqueueDevices(notificationId, appId, chunk, now, leasedUntil).leased() : List.of();
                return step(chunk, cursor, DEVICE_CHUNK, leased);
            }
            case USERS -> {
                List<String> chunk = nextIds(target.ids(), cursor, USER_CHUNK);
                List<DeliveryStore.ClaimedPush> leased = List.of();
                if (!chunk.isEmpty()) {
                    List<String> others = new ArrayList<>();
                    for (Channel channel : List.of(Channel.IN_APP, Channel.LIVE, Channel.EMAIL)) {
                        if (request.channels().contains(channel)) {
                            others.add(channel.wire());
                        }
                    }
                    leased = store.enqueueUsers(notificationId, appId, chunk, push, others, "not_configured", now,
                            leasedUntil);
                }
                return step(chunk, cursor, USER_CHUNK, leased);
            }
            default -> throw new IllegalStateException("unknown target " + target.kind());
        }
    }

    private static Step step(List<String> chunk, String cursor, int size, List<DeliveryStore.ClaimedPush> leased) {
        if (chunk.isEmpty()) {
            return new Step(cursor, true, leased);
        }
        return new Step(chunk.get(chunk.size() - 1), chunk.size() < size, leased);
    }

    /** The next {@code size} ids after {@code cursor} in sorted order. */
    private static List<String> nextIds(List<String> ids, String cursor, int size) {
        return ids.stream().filter(id -> id.compareTo(cursor) > 0).sorted().limit(size).toList();
    }
}
