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
     * The largest push a recipient may get, as {@code size} measures it: title and body fall back each
     * on its own, so any title may meet any body. A payload's size is its fixed part plus the title's
     * and the body's encoded lengths, so the largest title with the largest body is the largest pair:
     * found in one pass over each, not by trying every pair.
     */
    public PushContent largestPush(java.util.function.ToIntFunction<PushContent> size, Instant expiresAt) {
        String largestTitle = largest(title, t -> size.applyAsInt(variant(t, firstOf(body), expiresAt)));
        String largestBody = largest(body, b -> size.applyAsInt(variant(largestTitle, b, expiresAt)));
        return variant(largestTitle, largestBody, expiresAt);
    }

    private static String largest(LocalizedText text, java.util.function.ToIntFunction<String> size) {
        if (text == null) {
            return null;
        }
        String best = null;
        int bestSize = -1;
        for (String candidate : text.byLocale().values()) {
            int candidateSize = size.applyAsInt(candidate);
            if (candidateSize > bestSize) {
                best = candidate;
                bestSize = candidateSize;
            }
        }
        return best;
    }

    private static String firstOf(LocalizedText text) {
        return text == null ? null : text.byLocale().values().iterator().next();
    }

    private PushContent variant(String t, String b, Instant expiresAt) {
        // the largest badge an "unread" count may become
        return new PushContent(silent() ? PushKind.BACKGROUND : PushKind.ALERT, t, b, data, link,
                badgeUnread ? Integer.valueOf(99_999) : badge, sound, collapseKey, priority, expiresAt);
    }

    /** A notification without title is a silent background push. */
    public boolean silent() {
        return title == null;
    }
}
