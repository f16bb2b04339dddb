package dev.herald.delivery;

import dev.herald.notifications.Channel;
import dev.herald.notifications.NotificationRequest;
import dev.herald.notifications.Target;
import jakarta.inject.Singleton;

import dev.herald.email.SmtpSettings;
import dev.herald.inbox.InboxItemView;
import dev.herald.inbox.InboxStore;
import dev.herald.live.LiveEvents;
import dev.herald.live.LiveHub;
import io.micronaut.transaction.TransactionOperations;
import dev.herald.preferences.Preferences;

import java.sql.Connection;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Turns a notification's target into deliveries, a chunk at a time, inside the caller's transaction.
 * Users get the routing steps in order, within their preferences: (1) an inbox item in their locale
 * (their saved locale, else their latest device's, else {@code en}); (3) a queued push per device of the
 * app, or {@code no_device}, unless their preferences turn push off for the category
 * ({@code preference}) or it is their quiet hours and the notification is not {@code high}
 * ({@code quiet_hours}) or they are present ({@code present}); (2) a present user (a stream on any
 * node, see {@link LiveHub}) gets the notification on their streams once the transaction commits, and
 * {@code live} is {@code sent}, else {@code suppressed / away}; (4) email, when allowed and the user has an address and the app an
 * email sender (else {@code preference} / {@code not_configured}), a queued step that the email worker
 * sends only if no push reached a gateway and no live event reached the user. Devices routed while
 * accepting get a queued push per matching device; a routing job for devices or tags is a
 * {@link FanOut} instead. Channels the request left out get no delivery at all.
 */
@Singleton
public class Router {

    private static final org.slf4j.Logger LOG = org.slf4j.LoggerFactory.getLogger(Router.class);

    /** Users routed per transaction. */
    static final int USER_CHUNK = 1_000;
    /** Streams opened this long before a live-first event, or after it, get the item again once it is stored. */
    static final Duration REOPENED_MARGIN = Duration.ofSeconds(5);
    /** Users reached live first per transaction and batch of events (see {@link #liveFirst}). */
    static final int LIVE_SLICE = 2_000;
    /** Devices routed per transaction. */
    static final int DEVICE_CHUNK = 5_000;

    private final DeliveryStore store;
    private final dev.herald.preferences.PreferenceStore preferences;
    private final InboxStore inbox;

    private final LiveHub live;
    private final TransactionOperations<Connection> transactions;
    private final SmtpSettings smtp;
    private final AppGateways gateways;
    private final java.time.Duration ackTimeout;

    Router(DeliveryStore store, dev.herald.preferences.PreferenceStore preferences, InboxStore inbox, LiveHub live,
           TransactionOperations<Connection> transactions, SmtpSettings smtp, AppGateways gateways,
           @io.micronaut.context.annotation.Value("${herald.live.ack-timeout:5s}") java.time.Duration ackTimeout) {
        this.ackTimeout = ackTimeout;
        this.smtp = smtp;
        this.gateways = gateways;
        this.store = store;
        this.preferences = preferences;
        this.inbox = inbox;
        this.live = live;
        this.transactions = transactions;
    }

    /**
     * Where routing stands after a chunk: the cursor to go on from, or done; and the pushes routed,
     * leased to this node until {@code leasedUntil} for it to send at once, after the commit.
     */
    public record Step(String cursor, boolean done, List<DeliveryStore.ClaimedPush> leased) {
    }

    /**
     * The users a job reached live before routing their chunks (this node, or a node that had the job
     * before, from {@code shownFrom}, epoch milliseconds), and the inbox item ids shown with the time
     * those items carry.
     */
    public record Early(Set<String> users, Map<String, Long> itemIds, Instant at, long shownFrom) {
        public static final Early NONE = new Early(Set.of(), Map.of(), Instant.EPOCH, 0);
    }

    /**
     * Live first, for a job routing more users than one chunk: the users present now (on streams that
     * do not acknowledge) get the notification on their streams at once, instead of when their chunk
     * commits (a 10,000-user job commits ten chunks one after another). The users shown, and the inbox
     * item ids drawn for them, are kept on the job first, so the chunk stores each item under the id its
     * event showed, and a job taken over after a crash keeps those ids (a client skips ids it has seen).
     * Until a user's chunk commits, reading the item or a receipt for it answers 503 with
     * {@code Retry-After}.
     */
    public Early liveFirst(DeliveryStore.Job job, String notificationId, String appId, NotificationRequest request,
                           String cursor, Instant now, java.util.function.Supplier<Instant> leaseUntil) {
        if (request.target().kind() != Target.Kind.USERS || !request.channels().contains(Channel.LIVE)) {
            return Early.NONE;
        }
        // what a node that had the job before showed stays as shown, whoever is present now
        DeliveryStore.KeptLive before = transactions.executeRead(status -> store.keptLive(job));
        Map<String, Long> itemIds = new java.util.HashMap<>(before.itemIds());
        Instant itemsAt = before.at() == null ? Instant.EPOCH : before.at();
        long shownFrom = before.at() == null ? now.toEpochMilli() : before.at().toEpochMilli();
        Early kept = new Early(before.users(), itemIds, itemsAt, shownFrom);
        List<String> users = nextIds(request.target().ids(), cursor, Integer.MAX_VALUE);
        if (users.size() <= USER_CHUNK) {
            return kept;
        }
        long started = System.nanoTime();
        Map<String, LiveHub.Reach> reach = live.presence(users);
        long presenceNanos = System.nanoTime() - started;
        long planNanos = 0;
        long publishNanos = 0;
        List<String> present = users.stream()
                .filter(u -> reach.get(u) == LiveHub.Reach.PRESENT && !before.users().contains(u)).toList();
        if (present.isEmpty()) {
            return kept;
        }
        String category = request.category();
        // as PostgreSQL keeps it, so that the event and the stored item show the same time
        Instant at = now.truncatedTo(java.time.temporal.ChronoUnit.MICROS);
        record Plan(DeliveryStore.LiveReservation reserved, Map<String, String> locales) {
        }
        Set<String> shown = new java.util.HashSet<>(before.users());
        Map<String, LiveEvents.Spliced> itemJson = new java.util.HashMap<>();
        Map<String, String> contentJson = new java.util.HashMap<>();
        // a slice at a time, so that the server writes one slice's events while the next is planned
        for (int from = 0; from < present.size(); from += LIVE_SLICE) {
            List<String> slice = present.subList(from, Math.min(present.size(), from + LIVE_SLICE));
            // one transaction per slice, committed before its events go out
            long planning = System.nanoTime();
            Plan plan = transactions.executeWrite(status -> {
                Map<String, Preferences> saved = preferences.findAll(slice);
                Set<String> withItem = request.channels().contains(Channel.IN_APP)
                        ? slice.stream().filter(u -> prefs(saved, u).allows(Channel.IN_APP, category))
                                .collect(java.util.stream.Collectors.toSet()) : Set.of();
                // empty: the job is no longer this node's
                return store.reserveLive(job, slice, withItem, at, leaseUntil.get())
                        .map(reserved -> new Plan(reserved, locales(appId, slice, saved))).orElse(null);
            });
            if (plan == null) {
                break;
            }
            long publishing = System.nanoTime();
            planNanos += publishing - planning;
            DeliveryStore.LiveReservation reserved = plan.reserved();
            itemIds.putAll(reserved.itemIds());
            itemsAt = reserved.at();
            Instant shownAt = reserved.at();
            List<LiveHub.Outgoing> events = new ArrayList<>(slice.size());
            for (String user : slice) {
                Long itemId = reserved.itemIds().get(user);
                String locale = plan.locales().get(user);
                if (itemId != null) {
                    // the same item for every user of a locale but for its id: written once
                    String id = InboxItemView.PREFIX + itemId;
                    events.add(new LiveHub.Outgoing(user, "notification", id, itemJson.computeIfAbsent(locale, l ->
                            LiveEvents.spliced(new InboxItemView(LiveEvents.SLOT, notificationId, appId, category,
                                    request.type(), inLocale(request.title(), l),
                                    inLocale(request.body(), l), request.link(),
                                    request.data(), null, shownAt))).with(id), 0));
                } else {
                    events.add(new LiveHub.Outgoing(user, "notification", null, contentJson.computeIfAbsent(locale, l ->
                            LiveEvents.json(content(notificationId, appId, request, l))), 0));
                }
            }
            live.publishAll(events);
            publishNanos += System.nanoTime() - publishing;
            shown.addAll(slice);
        }
        if (shown.size() == before.users().size()) {
            return kept;
        }
        // the writes first: storing the chunks would take the CPU they wait for
        long writing = System.nanoTime();
        live.awaitWritten(Duration.ofSeconds(1));
        if (LOG.isDebugEnabled()) {
            LOG.debug("Live first: {} of {} users shown in {} ms: presence {} ms, reserving {} ms, events {} ms, "
                            + "written {} ms later", shown.size(), users.size(),
                    (System.nanoTime() - started) / 1_000_000, presenceNanos / 1_000_000,
                    planNanos / 1_000_000, publishNanos / 1_000_000, (System.nanoTime() - writing) / 1_000_000);
        }
        return new Early(shown, itemIds, itemsAt, shownFrom);
    }

    /** Routes the whole target at once (small targets, while accepting); answers the pushes leased. */
    public List<DeliveryStore.ClaimedPush> routeAll(String notificationId, String appId, NotificationRequest request,
                                                    Instant now, Instant leasedUntil) {
        List<DeliveryStore.ClaimedPush> leased = new ArrayList<>();
        Step step = new Step("", false, List.of());
        while (!step.done()) {
            step = routeChunk(notificationId, appId, request, step.cursor(), now, leasedUntil, Early.NONE);
            leased.addAll(step.leased());
        }
        return leased;
    }

    /**
     * Routes the next chunk after {@code cursor} ({@code ""} at the start); users in {@code early} were
     * reached live already (see {@link #liveFirst}).
     */
    public Step routeChunk(String notificationId, String appId, NotificationRequest request, String cursor,
                           Instant now, Instant leasedUntil, Early early) {
        Target target = request.target();
        boolean push = request.channels().contains(Channel.PUSH);
        switch (target.kind()) {
            case TAGS -> {
                // tags always get a routing job, and a job for tags with push is a FanOut: pushes first
                if (push) {
                    throw new IllegalStateException("tag targets with push are routed by FanOut");
                }
                return new Step(cursor, true, List.of());
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
                        : routeUsers(notificationId, appId, request, chunk, now, leasedUntil, early);
                return step(chunk, cursor, USER_CHUNK, leased);
            }
            default -> throw new IllegalStateException("unknown target " + target.kind());
        }
    }

    private List<DeliveryStore.ClaimedPush> routeUsers(String notificationId, String appId, NotificationRequest request,
                                                       List<String> users, Instant now, Instant leasedUntil, Early early) {
        Map<String, Preferences> saved = preferences.findAll(users);
        String category = request.category();
        List<DeliveryStore.UserStep> steps = new ArrayList<>();
        Map<String, InboxStore.Item> stored = new java.util.HashMap<>();
        Map<String, LiveHub.Reach> reach = new java.util.HashMap<>();
        if (request.channels().contains(Channel.LIVE)) {
            // users reached live first stay reached; the others are looked up now
            List<String> lookUp = users.stream().filter(u -> !early.users().contains(u)).toList();
            reach.putAll(lookUp.isEmpty() ? Map.of() : live.presence(lookUp));
            users.stream().filter(early.users()::contains).forEach(u -> reach.put(u, LiveHub.Reach.PRESENT));
        }
        if (request.channels().contains(Channel.IN_APP)) {
            // an item a live event already showed is stored whatever the preferences say by now
            List<String> toInbox = users.stream().filter(u -> early.itemIds().containsKey(u)
                    || prefs(saved, u).allows(Channel.IN_APP, category)).toList();
            Map<String, String> locales = locales(appId, toInbox, saved);
            List<InboxStore.NewItem> items = new ArrayList<>(toInbox.size());
            for (String user : toInbox) {
                String locale = locales.get(user);
                Long id = early.itemIds().get(user);
                items.add(new InboxStore.NewItem(user, appId, notificationId, category, request.type(),
                        inLocale(request.title(), locale),
                        inLocale(request.body(), locale), request.link(), request.data(),
                        id, id == null ? null : early.at()));
            }
            inbox.insert(items, now).forEach(item -> stored.put(item.userId(), item));
            for (String user : users) {
                boolean allowed = early.itemIds().containsKey(user) || prefs(saved, user).allows(Channel.IN_APP, category);
                steps.add(new DeliveryStore.UserStep(user, Channel.IN_APP.wire(), allowed ? "sent" : "suppressed",
                        allowed ? null : "preference"));
            }
        }
        List<String> reached = users.stream().filter(u -> reach.getOrDefault(u, LiveHub.Reach.AWAY) != LiveHub.Reach.AWAY).toList();
        if (request.channels().contains(Channel.LIVE)) {
            for (String user : users) {
                boolean here = reach.getOrDefault(user, LiveHub.Reach.AWAY) != LiveHub.Reach.AWAY;
                boolean waitsForAck = reach.get(user) == LiveHub.Reach.PRESENT_ACK;
                steps.add(new DeliveryStore.UserStep(user, Channel.LIVE.wire(), here ? "sent" : "suppressed",
                        here ? (waitsForAck ? DeliveryStore.AWAITING_ACK : null) : "away"));
            }
            if (!reached.isEmpty()) {
                // a stream opened around the live-first events (the nodes' clocks may differ a little) gets it again
                publishAfterCommit(notificationId, appId, request, reached, early.users(),
                        early.shownFrom() - REOPENED_MARGIN.toMillis(), stored, saved);
            }
        }
        List<DeliveryStore.ClaimedPush> leased = List.of();
        if (request.channels().contains(Channel.PUSH)) {
            List<String> toPush = new ArrayList<>();
            List<String> afterAck = new ArrayList<>();
            Map<String, String> suppressed = new LinkedHashMap<>();
            for (String user : users) {
                Preferences p = prefs(saved, user);
                if (reach.get(user) == LiveHub.Reach.PRESENT) {
                    suppressed.put(user, "present");
                } else if (!p.allows(Channel.PUSH, category)) {
                    suppressed.put(user, "preference");
                } else if (request.priority() != Priority.HIGH && p.quietAt(now)) {
                    suppressed.put(user, "quiet_hours");
                } else if (reach.get(user) == LiveHub.Reach.PRESENT_ACK) {
                    afterAck.add(user);
                } else {
                    toPush.add(user);
                }
            }
            // on streams that acknowledge: the push waits; a 'received' receipt in time suppresses it
            store.queuePushesAfterAck(notificationId, appId, afterAck, now.plus(ackTimeout), now);
            if (!toPush.isEmpty()) {
                leased = store.enqueueUsers(notificationId, appId, toPush, true, List.of(), null, now, leasedUntil);
            }
            store.suppressPushes(notificationId, appId, suppressed, now);
        }
        List<String> toEmail = new ArrayList<>();
        if (request.channels().contains(Channel.EMAIL)) {
            boolean configured = smtp.configured() && gateways.emailFrom(appId).isPresent();
            for (String user : users) {
                Preferences p = prefs(saved, user);
                if (!p.allows(Channel.EMAIL, category)) {
                    steps.add(new DeliveryStore.UserStep(user, Channel.EMAIL.wire(), "suppressed", "preference"));
                } else if (!configured || p.email() == null) {
                    steps.add(new DeliveryStore.UserStep(user, Channel.EMAIL.wire(), "suppressed", "not_configured"));
                } else {
                    toEmail.add(user);
                }
            }
        }
        store.insertUserSteps(notificationId, steps, now);
        // the email worker decides once the user's pushes settled: sent only when none reached a gateway
        // users on acknowledging streams: decided once the acknowledgement could have come
        List<String> emailNow = toEmail.stream().filter(u -> reach.get(u) != LiveHub.Reach.PRESENT_ACK).toList();
        List<String> emailAfterAck = toEmail.stream().filter(u -> reach.get(u) == LiveHub.Reach.PRESENT_ACK).toList();
        store.queueEmails(notificationId, emailNow, now, now);
        store.queueEmails(notificationId, emailAfterAck, now.plus(ackTimeout), now);
        return leased;
    }

    /**
     * Once the routing transaction commits, each present user gets the notification on their streams
     * (the inbox item when one was stored, with its id, else the notification's content) and their new
     * unread count.
     */
    private void publishAfterCommit(String notificationId, String appId, NotificationRequest request, List<String> reached,
                                    Set<String> reachedEarly, long reopenedFrom, Map<String, InboxStore.Item> stored,
                                    Map<String, Preferences> saved) {
        Map<String, Long> unread = stored.isEmpty() ? Map.of() : inbox.unreadCounts(reached);
        List<LiveHub.Outgoing> events = new ArrayList<>();
        for (String user : reached) {
            InboxStore.Item item = stored.get(user);
            boolean shown = reachedEarly.contains(user);
            if (item != null) {
                // shown live first: again only on streams opened since (their replay could not have it yet)
                InboxItemView view = InboxItemView.of(item);
                events.add(new LiveHub.Outgoing(user, "notification", view.id(), LiveEvents.json(view),
                        shown ? reopenedFrom : 0));
                events.add(new LiveHub.Outgoing(user, "unread", null, "{\"unread\":" + unread.getOrDefault(user, 0L) + "}", 0));
            } else {
                events.add(new LiveHub.Outgoing(user, "notification", null,
                        LiveEvents.json(content(notificationId, appId, request, prefs(saved, user).locale())),
                        shown ? reopenedFrom : 0));
            }
        }
        AfterCommit.run(transactions, () -> live.publishAll(events));
    }

    /** A notification's content for a user whose inbox does not keep it, in their locale. */
    private static Map<String, Object> content(String notificationId, String appId, NotificationRequest request, String locale) {
        Map<String, Object> content = new LinkedHashMap<>();
        content.put("notificationId", notificationId);
        content.put("app", appId);
        content.put("category", request.category());
        content.put("type", request.type());
        content.put("title", inLocale(request.title(), locale));
        content.put("body", inLocale(request.body(), locale));
        content.put("link", request.link());
        content.put("data", request.data());
        return content;
    }

    /** Each user's locale: their saved one, else their latest device's for the app, else {@code en}. */
    private Map<String, String> locales(String appId, List<String> users, Map<String, Preferences> saved) {
        List<String> withoutSaved = users.stream().filter(u -> !saved.containsKey(u)).toList();
        Map<String, String> deviceLocales = withoutSaved.isEmpty() ? Map.of() : store.deviceLocales(appId, withoutSaved);
        Map<String, String> locales = new java.util.HashMap<>();
        for (String user : users) {
            locales.put(user, saved.containsKey(user) ? saved.get(user).locale()
                    : deviceLocales.getOrDefault(user, Preferences.DEFAULT_LOCALE));
        }
        return locales;
    }

    /** The text for a user of {@code locale} ({@link dev.herald.notifications.LocalizedText#forLocale}); none stays null. */
    private static String inLocale(@io.micronaut.core.annotation.Nullable dev.herald.notifications.LocalizedText text, String locale) {
        return text == null ? null : text.forLocale(locale);
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
    static List<String> nextIds(List<String> ids, String cursor, int size) {
        return ids.stream().filter(id -> id.compareTo(cursor) > 0).sorted().limit(size).toList();
    }
}
