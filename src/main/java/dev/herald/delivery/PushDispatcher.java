package dev.herald.delivery;

import dev.herald.apns.ApnsSender;
import dev.herald.fcm.FcmSender;
import dev.herald.limits.DevicePushCap;
import jakarta.inject.Singleton;

import java.nio.charset.StandardCharsets;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

/**
 * Sends one claimed push through its platform's gateway and turns what happened into the delivery's
 * next state. Never blocks (but for a credentials lookup the first time an app is seen in a few
 * seconds) and never fails: every outcome is a {@link Settled}.
 */
@Singleton
class PushDispatcher {

    /** How long a push may stay with a gateway before it counts as a passing failure. */
    static final Duration SEND_DEADLINE = Duration.ofSeconds(30);

    private final ApnsSender apns;
    private final FcmSender fcm;
    private final AppGateways gateways;
    private final Clock clock;

    private final dev.herald.inbox.InboxStore inbox;
    private final dev.herald.preferences.PreferenceCache preferences;
    private final io.micronaut.transaction.TransactionOperations<java.sql.Connection> transactions;
    private final DevicePushCap cap;

    PushDispatcher(ApnsSender apns, FcmSender fcm, AppGateways gateways, Clock clock, dev.herald.inbox.InboxStore inbox,
                   io.micronaut.transaction.TransactionOperations<java.sql.Connection> transactions,
                   dev.herald.preferences.PreferenceCache preferences, DevicePushCap cap) {
        this.cap = cap;
        this.inbox = inbox;
        this.preferences = preferences;
        this.transactions = transactions;
        this.apns = apns;
        this.fcm = fcm;
        this.gateways = gateways;
        this.clock = clock;
    }

    /** A delivery's next state, and the token to clear when the gateway called it dead. */
    record Settled(DeliveryStore.Finished finished, String appId, DeliveryStore.DeadToken deadToken) {
    }

    CompletableFuture<Settled> dispatch(DeliveryStore.ClaimedPush push, NotificationPlans.Plan plan) {
        try {
            return send(push, plan);
        } catch (RuntimeException e) {
            // a credentials lookup that could not reach the database, say: try again later
            return CompletableFuture.completedFuture(settle(push, plan, new PushResult.Retry("internal", null),
                    clock.instant()));
        }
    }

    private CompletableFuture<Settled> send(DeliveryStore.ClaimedPush push, NotificationPlans.Plan plan) {
        Instant now = clock.instant();
        String appId = plan.notification.appId();
        // a first attempt always goes out (ttlSeconds 0: now or never, as APNs' expiration 0)
        if (!now.isBefore(plan.notification.expiresAt()) && push.attempts() > 1) {
            // the reason the last attempt failed, if one was made
            return done(push, appId, "expired", push.lastReason());
        }
        if (push.platform() == null) {
            return done(push, appId, "suppressed", "no_device");
        }
        if (push.token() == null) {
            return done(push, appId, "failed", "no_token");
        }
        String refused = refusedByUser(push, plan, now);
        if (refused != null) {
            return done(push, appId, "suppressed", refused);
        }
        if (capped.remove(push.id()) != null) {
            return done(push, appId, "suppressed", "device_limit");
        }
        if (plan.notification.test()) {
            return done(push, appId, "simulated", null);
        }
        Optional<GatewayCredentials> credentials = gateways.credentials(appId, push.platform());
        if (credentials.isEmpty()) {
            return done(push, appId, "suppressed", "not_configured");
        }
        Push outgoing = new Push(pushId(push.notificationId(), push.installationId()), push.token(),
                plan.notification.request().badgeUnread() ? unreadBadge(push, plan) : plan.content(push.locale()));
        PushSender sender = switch (push.platform()) {
            case IOS -> apns;
            case ANDROID -> fcm;
        };
        CompletableFuture<PushResult> sent;
        try {
            sent = sender.send(credentials.get(), outgoing);
        } catch (RuntimeException e) {
            sent = CompletableFuture.completedFuture(new PushResult.Retry("send_failed", null));
        }
        return sent.orTimeout(SEND_DEADLINE.toMillis(), TimeUnit.MILLISECONDS)
                .exceptionally(e -> new PushResult.Retry("timeout", null))
                .thenApply(result -> settle(push, plan, result, clock.instant()));
    }

    /**
     * For device and tag targets (user targets were checked while routing), the reason the user's
     * preferences keep this push back ({@code preference}, {@code quiet_hours}), or null. Read from
     * {@link PreferenceCache}, which the worker fills for a whole batch first.
     */
    /**
     * Reads, in one query each, the preferences and unread counts the {@link #dispatch} of these pushes
     * will need, and counts their first attempts against their devices' caps. Never throws.
     */
    void prepare(List<DeliveryStore.ClaimedPush> pushes, java.util.function.Function<String, NotificationPlans.Plan> plans) {
        try {
            java.util.Set<String> users = new java.util.HashSet<>();
            for (DeliveryStore.ClaimedPush push : pushes) {
                NotificationPlans.Plan plan = plans.apply(push.notificationId());
                if (plan != null && push.attempts() <= 1
                        && plan.notification.request().target().kind() != dev.herald.notifications.Target.Kind.USERS) {
                    users.add(push.userId());
                }
            }
            if (!users.isEmpty()) {
                preferences.prefetch(users);
            }
        } catch (RuntimeException e) {
            // each push then reads its own, or goes out as the defaults allow
        }
        try {
            // badge "unread": one count query per app for the batch, not one per push
            Map<String, List<DeliveryStore.ClaimedPush>> badgePushesByApp = new java.util.HashMap<>();
            for (DeliveryStore.ClaimedPush push : pushes) {
                NotificationPlans.Plan plan = plans.apply(push.notificationId());
                if (plan != null && plan.notification.request().badgeUnread()) {
                    badgePushesByApp.computeIfAbsent(plan.notification.appId(), a -> new java.util.ArrayList<>()).add(push);
                }
            }
            badgePushesByApp.forEach((app, appPushes) -> {
                List<String> users = appPushes.stream().map(DeliveryStore.ClaimedPush::userId).distinct().toList();
                Map<String, Long> counts = transactions.executeRead(s -> inbox.unreadCounts(users, app));
                appPushes.forEach(p -> unreadCounts.put(p.id(), counts.getOrDefault(p.userId(), 0L)));
            });
        } catch (RuntimeException e) {
            // each push then reads its own count
        }
        try {
            // counted after the preferences were read: a push the user's settings hold back, or a test
            // key's, does not use up the device's cap
            Instant now = clock.instant();
            List<DevicePushCap.Counted> counted = new java.util.ArrayList<>();
            for (DeliveryStore.ClaimedPush push : pushes) {
                NotificationPlans.Plan plan = plans.apply(push.notificationId());
                if (plan != null && push.attempts() <= 1 && push.token() != null && push.platform() != null
                        && !plan.notification.test() && refusedByUser(push, plan, now) == null) {
                    String app = plan.notification.appId();
                    counted.add(new DevicePushCap.Counted(push.id(), app, push.installationId(), capOf(app)));
                }
            }
            cap.over(counted).forEach(id -> capped.put(id, Boolean.TRUE));
        } catch (RuntimeException e) {
            // the app's settings unreadable this moment: nothing capped
        }
    }

    /** The app's own cap on pushes per device per minute, else the deployment's. */
    private int capOf(String appId) {
        return gateways.app(appId).map(a -> a.document().path("limits").path("devicePushesPerMinute").asInt(cap.perMinute()))
                .orElse(cap.perMinute());
    }

    /** Deliveries over their device's cap, found for a batch, each taken by its push. */
    private final Map<Long, Boolean> capped = com.github.benmanes.caffeine.cache.Caffeine.newBuilder()
            .expireAfterWrite(Duration.ofSeconds(30)).<Long, Boolean>build().asMap();

    /** Unread counts read for a batch, by delivery id, each taken by its push. */
    private final Map<Long, Long> unreadCounts = com.github.benmanes.caffeine.cache.Caffeine.newBuilder()
            .expireAfterWrite(Duration.ofSeconds(30)).<Long, Long>build().asMap();

    private String refusedByUser(DeliveryStore.ClaimedPush push, NotificationPlans.Plan plan, Instant now) {
        dev.herald.notifications.NotificationRequest request = plan.notification.request();
        if (request.target().kind() == dev.herald.notifications.Target.Kind.USERS || push.attempts() > 1) {
            return null;
        }
        dev.herald.preferences.Preferences p;
        try {
            p = preferences.get(push.userId());
        } catch (RuntimeException e) {
            return null; // preferences unreadable this moment: the push goes out as the defaults allow
        }
        if (!p.allows(dev.herald.notifications.Channel.PUSH, request.category())) {
            return "preference";
        }
        return request.priority() != Priority.HIGH && p.quietAt(now) ? "quiet_hours" : null;
    }

    /**
     * {@code badge: "unread"}: the user's unread inbox count for the app, this notification's item
     * included (read as the push leaves, so it is as fresh as it can be).
     */
    private PushContent unreadBadge(DeliveryStore.ClaimedPush push, NotificationPlans.Plan plan) {
        Long prefetched = unreadCounts.remove(push.id());
        long unread = prefetched != null ? prefetched
                : transactions.executeRead(status -> inbox.unreadCount(push.userId(), plan.notification.appId()));
        return plan.notification.request().pushContent(push.locale(), plan.notification.expiresAt(),
                (int) Math.min(unread, Integer.MAX_VALUE));
    }

    /** The id a push carries to the gateway (APNs {@code apns-id}): the same for every attempt and replay. */
    static UUID pushId(String notificationId, String installationId) {
        return UUID.nameUUIDFromBytes((notificationId + "/" + installationId).getBytes(StandardCharsets.UTF_8));
    }

    private Settled settle(DeliveryStore.ClaimedPush push, NotificationPlans.Plan plan, PushResult result, Instant now) {
        String appId = plan.notification.appId();
        if (result instanceof PushResult.Accepted) {
            return settled(push, appId, "sent", null, null, null);
        }
        if (result instanceof PushResult.Rejected rejected) {
            return settled(push, appId, "failed", rejected.reason(), null, null);
        }
        if (result instanceof PushResult.TokenInvalid invalid) {
            return settled(push, appId, "failed", invalid.reason(), null,
                    new DeliveryStore.DeadToken(push.installationId(), push.token(),
                            invalid.invalidSince() == null ? now : invalid.invalidSince(), invalid.reason()));
        }
        PushResult.Retry retry = (PushResult.Retry) result;
        Instant next = now.plus(Backoff.after(push.attempts(), retry.retryAfter()));
        return next.isBefore(plan.notification.expiresAt())
                ? settled(push, appId, "queued", retry.reason(), next, null)
                : settled(push, appId, "expired", retry.reason(), null, null);
    }

    private static CompletableFuture<Settled> done(DeliveryStore.ClaimedPush push, String appId, String status,
                                                   String reason) {
        return CompletableFuture.completedFuture(settled(push, appId, status, reason, null, null));
    }

    private static Settled settled(DeliveryStore.ClaimedPush push, String appId, String status, String reason,
                                   Instant next, DeliveryStore.DeadToken dead) {
        return new Settled(new DeliveryStore.Finished(push.id(), push.attempts(), status, reason, next), appId, dead);
    }
}
