package dev.herald.notifications;

import dev.herald.delivery.Priority;
import dev.herald.delivery.PushContent;
import dev.herald.delivery.PushKind;

import java.time.Instant;
import java.util.Map;
import java.util.Objects;
import java.util.Set;

/**
 * A notification as accepted by {@code POST /v1/notifications}, after validation and defaults.
 *
 * @param title       null for a silent (background) push
 * @param badgeUnread {@code badge: "unread"}: the badge is the user's unread inbox count for the app
 * @param sendAt      null to send now
 */
public record NotificationRequest(Target target, String category, String type, Priority priority,
                                  LocalizedText title, LocalizedText body, String link, Map<String, String> data,
                                  Integer badge, boolean badgeUnread, String sound, String collapseKey,
                                  int ttlSeconds, Set<Channel> channels, Instant sendAt) {

    public static final int DEFAULT_TTL_SECONDS = 86_400;
    /** APNs keeps a push at most 30 days and FCM at most 28 (https://firebase.google.com/docs/cloud-messaging/concept-options#ttl): 28 days. */
    public static final int MAX_TTL_SECONDS = 2_419_200;

    public NotificationRequest {
        Objects.requireNonNull(target, "target");
        Objects.requireNonNull(type, "type");
        Objects.requireNonNull(priority, "priority");
        data = Map.copyOf(data);
        channels = Set.copyOf(channels);
        if (ttlSeconds < 0 || ttlSeconds > MAX_TTL_SECONDS) {
            throw new IllegalArgumentException("ttlSeconds must be 0 to " + MAX_TTL_SECONDS);
        }
        if (title == null && data.isEmpty()) {
            throw new IllegalArgumentException("a notification needs a title or data");
        }
    }

    /**
     * What the push says to a recipient whose locale is {@code locale} (may be null).
     *
     * @param badgeValue the badge to show when the request asked for {@code "unread"}
     */
    public PushContent pushContent(String locale, Instant expiresAt, Integer badgeValue) {
        return new PushContent(silent() ? PushKind.BACKGROUND : PushKind.ALERT,
                title == null ? null : title.forLocale(locale), body == null ? null : body.forLocale(locale),
                data, link, badgeUnread ? badgeValue : badge, sound, collapseKey, priority, expiresAt);
    }

    /**
     * Every title and body a recipient may get together, for checking payload sizes up front: title
     * and body fall back each on its own, so any title may meet any body.
     */
    public java.util.List<PushContent> everyVariant(Instant expiresAt) {
        java.util.List<String> titles = title == null ? java.util.Collections.singletonList(null)
                : java.util.List.copyOf(title.byLocale().values());
        java.util.List<String> bodies = body == null ? java.util.Collections.singletonList(null)
                : java.util.List.copyOf(body.byLocale().values());
        java.util.List<PushContent> variants = new java.util.ArrayList<>();
        for (String t : titles) {
            for (String b : bodies) {
                // the largest badge an "unread" count may become
                variants.add(new PushContent(silent() ? PushKind.BACKGROUND : PushKind.ALERT, t, b, data, link,
                        badgeUnread ? Integer.valueOf(99_999) : badge, sound, collapseKey, priority, expiresAt));
            }
        }
        return variants;
    }

    /** A notification without title is a silent background push. */
    public boolean silent() {
        return title == null;
    }
}
