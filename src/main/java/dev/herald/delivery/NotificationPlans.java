package dev.herald.delivery;

import com.github.benmanes.caffeine.cache.Cache;
import com.github.benmanes.caffeine.cache.Caffeine;
import dev.herald.notifications.NotificationStore;
import dev.herald.notifications.StoredNotification;
import jakarta.inject.Singleton;

import java.time.Duration;
import java.util.Collection;
import java.util.HashMap;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.stream.Collectors;

/**
 * The notifications workers are sending, read once per batch of misses and kept while in use, with
 * each locale's push content built once. Blocking on a miss: worker threads only. Thread-safe.
 */
@Singleton
class NotificationPlans {

    private final NotificationStore notifications;
    private final Cache<String, Plan> cache = Caffeine.newBuilder()
            .expireAfterAccess(Duration.ofMinutes(10)).maximumSize(20_000).build();

    NotificationPlans(NotificationStore notifications) {
        this.notifications = notifications;
    }

    /** A notification with its push content per locale, built on first use. */
    static final class Plan {
        final StoredNotification notification;
        private final Map<String, dev.herald.delivery.PushContent> contentByLocale = new ConcurrentHashMap<>();

        Plan(StoredNotification notification) {
            this.notification = notification;
        }

        PushContent content(String locale) {
            return contentByLocale.computeIfAbsent(locale == null ? "" : locale, l ->
                    notification.request().pushContent(l.isEmpty() ? null : l, notification.expiresAt(), null));
        }
    }

    /** The plans for these notification ids (a deleted notification is missing from the answer). */
    Map<String, Plan> get(Collection<String> ids) {
        Map<String, Plan> found = new HashMap<>(cache.getAllPresent(ids));
        Set<String> missing = ids.stream().filter(id -> !found.containsKey(id)).collect(Collectors.toSet());
        if (!missing.isEmpty()) {
            for (StoredNotification n : notifications.findAll(missing)) {
                Plan plan = new Plan(n);
                cache.put(n.id(), plan);
                found.put(n.id(), plan);
            }
        }
        return found;
    }

    /** Keeps a notification this node just stored, so sending it needs no read. */
    Plan remember(StoredNotification notification) {
        Plan plan = new Plan(notification);
        cache.put(notification.id(), plan);
        return plan;
    }
}
