package dev.herald.delivery;

import dev.herald.notifications.Channel;
import dev.herald.notifications.NotificationRequest;
import dev.herald.notifications.Target;
import jakarta.inject.Singleton;

import dev.herald.inbox.InboxStore;
import dev.herald.preferences.Preferences;

import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Turns a notification's target into deliveries, a chunk at a time, inside the caller's transaction.
 * Users get the routing steps in order, within their preferences: (1) an inbox item in their locale
 * (their saved locale, else their latest device's, else {@code en}); (3) a queued push per device of the
 * app, or {@code no_device}, unless their preferences turn push off for the category
 * ({@code preference}) or it is their quiet hours and the notification is not {@code high}
 * ({@code quiet_hours}); (2) live and (4) email, not built yet, are {@code suppressed /
 * not_configured} (email {@code preference} when turned off). Devices and tags get a queued push per
 * matching device. Channels the request left out get no delivery at all.
 */
@Singleton
public class Router {

    /** Users routed per transaction. */
    static final int USER_CHUNK = 1_000;
    /** Devices routed per transaction. */
    static final int DEVICE_CHUNK = 5_000;

    private final DeliveryStore store;
    private final dev.herald.preferences.PreferenceStore preferences;
    private final InboxStore inbox;

    Router(DeliveryStore store, dev.herald.preferences.PreferenceStore preferences, dev.herald.inbox.InboxStore inbox) {
        this.store = store;
        this.preferences = preferences;
        this.inbox = inbox;
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
                List<DeliveryStore.ClaimedPush> leased = chunk.isEmpty() ? List.of()
                        : routeUsers(notificationId, appId, request, chunk, now, leasedUntil);
                return step(chunk, cursor, USER_CHUNK, leased);
            }
            default -> throw new IllegalStateException("unknown target " + target.kind());
        }
    }

    private List<DeliveryStore.ClaimedPush> routeUsers(String notificationId, String appId, NotificationRequest request,
                                                       List<String> users, Instant now, Instant leasedUntil) {
        Map<String, Preferences> saved = preferences.findAll(users);
        String category = request.category();
        List<DeliveryStore.UserStep> steps = new ArrayList<>();
        if (request.channels().contains(Channel.IN_APP)) {
            List<String> toInbox = users.stream().filter(u -> prefs(saved, u).allows(Channel.IN_APP, category)).toList();
            List<String> withoutSaved = toInbox.stream().filter(u -> !saved.containsKey(u)).toList();
            Map<String, String> deviceLocales = withoutSaved.isEmpty() ? Map.of() : store.deviceLocales(appId, withoutSaved);
            List<InboxStore.NewItem> items = new ArrayList<>(toInbox.size());
            for (String user : toInbox) {
                String locale = saved.containsKey(user) ? saved.get(user).locale()
                        : deviceLocales.getOrDefault(user, Preferences.DEFAULT_LOCALE);
                items.add(new InboxStore.NewItem(user, appId, notificationId, category, request.type(),
                        request.title() == null ? null : request.title().forLocale(locale),
                        request.body() == null ? null : request.body().forLocale(locale), request.link(), request.data()));
            }
            inbox.insert(items, now);
            for (String user : users) {
                boolean stored = prefs(saved, user).allows(Channel.IN_APP, category);
                steps.add(new DeliveryStore.UserStep(user, Channel.IN_APP.wire(), stored ? "sent" : "suppressed",
                        stored ? null : "preference"));
            }
        }
        if (request.channels().contains(Channel.LIVE)) {
            users.forEach(u -> steps.add(new DeliveryStore.UserStep(u, Channel.LIVE.wire(), "suppressed", "not_configured")));
        }
        List<DeliveryStore.ClaimedPush> leased = List.of();
        if (request.channels().contains(Channel.PUSH)) {
            List<String> toPush = new ArrayList<>();
            Map<String, String> suppressed = new LinkedHashMap<>();
            for (String user : users) {
                Preferences p = prefs(saved, user);
                if (!p.allows(Channel.PUSH, category)) {
                    suppressed.put(user, "preference");
                } else if (request.priority() != Priority.HIGH && p.quietAt(now)) {
                    suppressed.put(user, "quiet_hours");
                } else {
                    toPush.add(user);
                }
            }
            if (!toPush.isEmpty()) {
                leased = store.enqueueUsers(notificationId, appId, toPush, true, List.of(), null, now, leasedUntil);
            }
            store.suppressPushes(notificationId, appId, suppressed, now);
        }
        if (request.channels().contains(Channel.EMAIL)) {
            for (String user : users) {
                boolean allowed = prefs(saved, user).allows(Channel.EMAIL, category);
                steps.add(new DeliveryStore.UserStep(user, Channel.EMAIL.wire(), "suppressed",
                        allowed ? "not_configured" : "preference"));
            }
        }
        store.insertUserSteps(notificationId, steps, now);
        return leased;
    }

    private static Preferences prefs(Map<String, Preferences> saved, String user) {
        return saved.getOrDefault(user, Preferences.DEFAULTS);
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
