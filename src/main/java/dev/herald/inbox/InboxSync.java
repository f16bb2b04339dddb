package dev.herald.inbox;

import dev.herald.apns.ApnsSender;
import dev.herald.delivery.AppGateways;
import dev.herald.delivery.DeliveryStore;
import dev.herald.delivery.GatewayCredentials;
import dev.herald.delivery.Priority;
import dev.herald.delivery.Push;
import dev.herald.delivery.PushContent;
import dev.herald.delivery.PushKind;
import dev.herald.delivery.PushSender;
import dev.herald.devices.Platform;
import dev.herald.fcm.FcmSender;
import dev.herald.live.LiveHub;
import io.micronaut.transaction.TransactionOperations;
import jakarta.annotation.PreDestroy;
import jakarta.inject.Singleton;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.nio.charset.StandardCharsets;
import java.sql.Connection;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;

/**
 * After a read or a delete, the user's other places learn the new unread count: their streams get an
 * {@code unread} event, and for apps with {@code syncBadges} every other device of the app gets a silent
 * push (APNs {@code background}, priority 5, {@code aps.badge}; FCM data {@code {type: "inbox.sync",
 * unread}}), at most one per device per {@link #WINDOW}: a change within the window is sent when it ends,
 * with the count as it is then.
 */
@Singleton
class InboxSync implements AutoCloseable {

    private static final Logger LOG = LoggerFactory.getLogger(InboxSync.class);
    static final Duration WINDOW = Duration.ofSeconds(30);

    private final InboxStore inbox;
    private final DeliveryStore deliveries;
    private final AppGateways gateways;
    private final ApnsSender apns;
    private final FcmSender fcm;
    private final LiveHub live;
    private final TransactionOperations<Connection> transactions;
    private final Clock clock;
    /** Per device: when its last silent push left, and whether a later change waits for the window's end. */
    private final Map<String, Instant> lastSent = com.github.benmanes.caffeine.cache.Caffeine.newBuilder()
            .expireAfterWrite(WINDOW).<String, Instant>build().asMap();
    private final Map<String, Boolean> trailing = new ConcurrentHashMap<>();
    private final ScheduledExecutorService executor = Executors.newSingleThreadScheduledExecutor(r -> {
        Thread t = new Thread(r, "inbox-sync");
        t.setDaemon(true);
        return t;
    });

    InboxSync(InboxStore inbox, DeliveryStore deliveries, AppGateways gateways, ApnsSender apns, FcmSender fcm, LiveHub live,
              TransactionOperations<Connection> transactions, Clock clock) {
        this.inbox = inbox;
        this.deliveries = deliveries;
        this.gateways = gateways;
        this.apns = apns;
        this.fcm = fcm;
        this.live = live;
        this.transactions = transactions;
        this.clock = clock;
    }

    /** The user's unread items changed in {@code apps} (after the commit); {@code except} is the device that acted. */
    void changed(String userId, Collection<String> apps, String except) {
        executor.execute(() -> {
            try {
                long unread = transactions.executeRead(status -> inbox.unreadCount(userId, null));
                live.publish(userId, "unread", null, "{\"unread\":" + unread + "}");
                for (String app : apps) {
                    if (gateways.syncBadges(app)) {
                        for (DeliveryStore.UserDevice device : transactions.executeRead(s -> deliveries.devicesOf(userId, app))) {
                            if (!device.installationId().equals(except)) {
                                badge(userId, app, device);
                            }
                        }
                    }
                }
            } catch (RuntimeException e) {
                LOG.warn("Inbox change of a user not passed on to their other devices: {}", e.toString());
            }
        });
    }

    private void badge(String userId, String app, DeliveryStore.UserDevice device) {
        String key = app + "/" + device.installationId();
        Instant now = clock.instant();
        Instant last = lastSent.get(key);
        if (last != null && now.isBefore(last.plus(WINDOW))) {
            if (trailing.putIfAbsent(key, true) == null) {
                executor.schedule(() -> {
                    trailing.remove(key);
                    lastSent.remove(key);
                    badge(userId, app, device);
                }, Duration.between(now, last.plus(WINDOW)).toMillis(), TimeUnit.MILLISECONDS);
            }
            return;
        }
        lastSent.put(key, now);
        long unread = transactions.executeRead(status -> inbox.unreadCount(userId, app));
        Optional<GatewayCredentials> credentials = gateways.credentials(app, device.platform());
        if (credentials.isEmpty()) {
            return;
        }
        int count = (int) Math.min(unread, Integer.MAX_VALUE);
        PushContent content = new PushContent(PushKind.BACKGROUND, null, null,
                Map.of("type", "inbox.sync", "unread", Integer.toString(count)), null, count, null, null,
                Priority.NORMAL, now.plus(Duration.ofHours(1)));
        PushSender sender = device.platform() == Platform.IOS ? apns : fcm;
        UUID id = UUID.nameUUIDFromBytes((key + "/" + now.toEpochMilli()).getBytes(StandardCharsets.UTF_8));
        sender.send(credentials.get(), new Push(id, device.token(), content));
    }

    @PreDestroy
    @Override
    public void close() {
        executor.shutdownNow();
    }

}
