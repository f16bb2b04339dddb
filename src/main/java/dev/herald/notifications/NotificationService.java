package dev.herald.notifications;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.herald.api.ApiException;
import dev.herald.api.JsonBodies;
import dev.herald.auth.Caller;
import dev.herald.delivery.DeliveryStore;
import dev.herald.delivery.PushWorker;
import dev.herald.delivery.PushesFirst;
import io.micronaut.core.annotation.Nullable;
import dev.herald.delivery.Router;
import io.micronaut.transaction.annotation.Transactional;
import jakarta.inject.Singleton;

import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.UUID;

/**
 * Accepts notifications durably: the notification, its idempotency key and its work (the deliveries
 * themselves for a small target sent now, else a routing job) commit in one transaction, so once the
 * caller has its 202 nothing is lost.
 */
@Singleton
public class NotificationService {

    /** Targets up to this many ids, sent now, are routed while accepting; larger ones by a routing job. */
    static final int ROUTE_WHILE_ACCEPTING = 100;

    private final NotificationStore notifications;
    private final DeliveryStore deliveries;
    private final Router router;
    private final ObjectMapper mapper;

    private final Optional<PushWorker> pushes;
    private final Optional<PushesFirst> pushesFirst;

    NotificationService(NotificationStore notifications, DeliveryStore deliveries, Router router,
                        Optional<PushWorker> pushes, Optional<PushesFirst> pushesFirst, JsonBodies bodies) {
        this.pushes = pushes;
        this.pushesFirst = pushesFirst;
        this.notifications = notifications;
        this.deliveries = deliveries;
        this.router = router;
        this.mapper = bodies.mapper();
    }

    /**
     * The answer to {@code POST /v1/notifications}; {@code replay} when an idempotency key matched.
     * {@code stored} and {@code leased}: the notification and the pushes routed while accepting, leased
     * to this node to send once the transaction committed (empty when a routing job will do it);
     * {@code first}: a device send whose pushes go out before its deliveries are written ({@link PushesFirst}).
     */
    public record Accepted(String id, String status, int recipients, boolean replay, boolean routed,
                           StoredNotification stored, List<DeliveryStore.ClaimedPush> leased,
                           @Nullable PushesFirst.Send first) {

        Accepted(String id, String status, int recipients, boolean replay, boolean routed,
                 StoredNotification stored, List<DeliveryStore.ClaimedPush> leased) {
            this(id, status, recipients, replay, routed, stored, leased, null);
        }
    }

    /** One notification to accept, as the API read it. */
    public record Incoming(Caller.AppKey key, JsonNode body, NotificationRequest request, String idempotencyKey,
                           Instant now) {

        /** Sent now to up to 100 devices, without an idempotency key: stored by the batched statements. */
        boolean plainDeviceSend() {
            return idempotencyKey == null && request.sendAt() == null && request.target().kind() == Target.Kind.DEVICES
                    && request.target().ids().size() <= ROUTE_WHILE_ACCEPTING
                    && request.channels().contains(Channel.PUSH);
        }
    }

    /** Accepts one notification in its own transaction. */
    @Transactional
    public Accepted accept(Caller.AppKey key, JsonNode body, NotificationRequest request, String idempotencyKey,
                           Instant now) {
        return acceptInTransaction(new Incoming(key, body, request, idempotencyKey, now));
    }

    /**
     * Accepts a batch in the caller's transaction (one commit for all): plain device sends with two
     * statements whatever their number, the others one by one. Answers in the batch's order, each
     * either an {@link Accepted} or the {@link ApiException} that refused it; an SQL failure fails the
     * whole batch (the caller then accepts each alone).
     */
    public List<Object> acceptBatch(List<Incoming> batch) {
        Object[] answers = new Object[batch.size()];
        List<Integer> plain = new ArrayList<>();
        for (int i = 0; i < batch.size(); i++) {
            if (batch.get(i).plainDeviceSend()) {
                plain.add(i);
            } else {
                try {
                    answers[i] = acceptInTransaction(batch.get(i));
                } catch (ApiException refused) {
                    answers[i] = refused;
                }
            }
        }
        if (!plain.isEmpty()) {
            List<Accepted> accepted = acceptPlainDeviceSends(plain.stream().map(batch::get).toList());
            for (int k = 0; k < plain.size(); k++) {
                answers[plain.get(k)] = accepted.get(k);
            }
        }
        return Arrays.asList(answers);
    }

    /**
     * Plain device sends. On a node that sends pushes they go pushes first: the notifications and a
     * routing job each, claimed by this node (the promise), and no delivery yet; {@link PushesFirst} sends
     * their pushes once this commits and writes each delivery once, with its outcome (a notification none
     * of whose devices exist gets no job: it is done). On a node without a push worker their deliveries
     * are written queued, due at once for whichever node claims them.
     */
    private List<Accepted> acceptPlainDeviceSends(List<Incoming> sends) {
        int n = sends.size();
        String[] ids = new String[n];
        List<DeliveryStore.DeviceTarget> targets = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            ids[i] = newId();
            for (String installation : sends.get(i).request().target().ids()) {
                targets.add(new DeliveryStore.DeviceTarget(ids[i], sends.get(i).key().appId(), installation));
            }
        }
        Instant now = sends.get(n - 1).now();
        boolean first = pushesFirst.isPresent();
        Map<String, List<DeliveryStore.Recipient>> devices = first ? deliveries.devicesOf(targets) : Map.of();
        DeliveryStore.BatchRouted queued = first ? null : deliveries.enqueueDeviceBatch(targets, now, now);
        List<NotificationStore.NewNotification> rows = new ArrayList<>(n);
        List<StoredNotification> stored = new ArrayList<>(n);
        for (int i = 0; i < n; i++) {
            Incoming in = sends.get(i);
            int recipients = first ? devices.getOrDefault(ids[i], List.of()).size()
                    : queued.matched().getOrDefault(ids[i], 0);
            // routed: every delivery exists; a device send's job's end says so instead
            boolean routed = !first || recipients == 0;
            Instant expiresAt = in.now().plusSeconds(in.request().ttlSeconds());
            rows.add(new NotificationStore.NewNotification(ids[i], in.key().appId(), in.key().test(), in.body(),
                    "routing", recipients, routed, in.now(), expiresAt, in.now()));
            stored.add(new StoredNotification(ids[i], in.key().appId(), in.key().test(), in.request(), "routing",
                    recipients, routed, in.now(), expiresAt, in.now()));
        }
        notifications.insertBatch(rows);
        Map<String, DeliveryStore.Job> jobs = first
                ? deliveries.insertClaimedJobs(devices.keySet(), now.plus(PushWorker.LEASE)) : Map.of();
        List<Accepted> answers = new ArrayList<>(n);
        for (int i = 0; i < n; i++) {
            StoredNotification s = stored.get(i);
            DeliveryStore.Job job = jobs.get(ids[i]);
            answers.add(new Accepted(ids[i], "accepted", s.recipients(), false, true, s, List.of(),
                    job == null ? null : new PushesFirst.Send(s, job, devices.get(ids[i]))));
        }
        return answers;
    }

    private static String newId() {
        return "ntf_" + UUID.randomUUID().toString().replace("-", "");
    }

    private Accepted acceptInTransaction(Incoming incoming) {
        Caller.AppKey key = incoming.key();
        JsonNode body = incoming.body();
        NotificationRequest request = incoming.request();
        String idempotencyKey = incoming.idempotencyKey();
        Instant now = incoming.now();
        String id = newId();
        if (idempotencyKey != null) {
            byte[] hash = hash(body);
            var remembered = notifications.rememberKey(key.appId(), idempotencyKey, hash, id, now);
            if (remembered.isPresent()) {
                if (!NotificationStore.sameHash(remembered.get().requestHash(), hash)) {
                    throw ApiException.conflict("This Idempotency-Key was used with another body in the last 24 hours");
                }
                StoredNotification first = notifications.find(key.appId(), remembered.get().notificationId())
                        .orElseThrow(() -> ApiException.conflict("This Idempotency-Key's notification is gone"));
                return new Accepted(first.id(), first.acceptedAs(), first.recipients(), true, false, first, List.of());
            }
        }
        Instant sendAt = request.sendAt() == null ? now : request.sendAt();
        Instant expiresAt = sendAt.plusSeconds(request.ttlSeconds());
        Target target = request.target();
        boolean routeNow = request.sendAt() == null && target.kind() != Target.Kind.TAGS
                && target.ids().size() <= ROUTE_WHILE_ACCEPTING;
        int recipients = recipients(key.appId(), target);
        String status = request.sendAt() == null ? "routing" : "scheduled";
        notifications.insert(id, key.appId(), key.test(), body, status, recipients, routeNow, sendAt, expiresAt, now);
        List<DeliveryStore.ClaimedPush> leased = List.of();
        if (routeNow) {
            // with no push worker on this node, the pushes are due at once for whichever node claims them
            leased = router.routeAll(id, key.appId(), request, now, pushes.isPresent() ? now.plus(PushWorker.LEASE) : now);
        } else {
            deliveries.insertJob(id, sendAt);
        }
        StoredNotification stored = new StoredNotification(id, key.appId(), key.test(), request, status, recipients,
                routeNow, sendAt, expiresAt, now);
        return new Accepted(id, request.sendAt() == null ? "accepted" : "scheduled", recipients, false, routeNow,
                stored, pushes.isPresent() ? leased : List.of());
    }

    /**
     * Accepts a notification Herald sends of its own accord (a missed call), in the caller's transaction,
     * routed by a job due now: after the commit, announce {@link dev.herald.delivery.WorkSignals.Kind#ROUTE}.
     * {@code body} is a request as {@code POST /v1/notifications} takes it; answers the notification's id.
     */
    public String acceptFromHerald(String appId, boolean test, JsonNode body, Instant now) {
        NotificationRequest request = NotificationRequests.parse(body, now);
        String id = newId();
        notifications.insert(id, appId, test, body, "routing", recipients(appId, request.target()), false, now,
                now.plusSeconds(request.ttlSeconds()), now);
        deliveries.insertJob(id, now);
        return id;
    }

    /** How many users the target names, or for devices and tags how many devices of the app match. */
    private int recipients(String appId, Target target) {
        return switch (target.kind()) {
            case USERS -> target.ids().size();
            case DEVICES -> deliveries.countDevices(appId, target.ids());
            case TAGS -> deliveries.countTagged(appId, target.ids());
        };
    }

    /**
     * Cancels a scheduled notification: true when it is (now or already) cancelled, false when routing
     * began; empty when the app has no such notification.
     */
    @Transactional
    public java.util.Optional<Boolean> cancel(String appId, String id) {
        var found = notifications.find(appId, id);
        if (found.isEmpty()) {
            return java.util.Optional.empty();
        }
        if ("cancelled".equals(found.get().status())) {
            return java.util.Optional.of(true);
        }
        if (notifications.leaveScheduled(id, "cancelled")) {
            deliveries.deleteJobsOf(id);
            return java.util.Optional.of(true);
        }
        return java.util.Optional.of(false);
    }

    /** SHA-256 of the body with object keys sorted, so key order and spacing do not make another body. */
    byte[] hash(JsonNode body) {
        try {
            return MessageDigest.getInstance("SHA-256").digest(mapper.writeValueAsBytes(canonical(body)));
        } catch (NoSuchAlgorithmException | JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }

    private JsonNode canonical(JsonNode node) {
        if (node.isObject()) {
            ObjectNode sorted = mapper.createObjectNode();
            List<String> names = new ArrayList<>();
            node.fieldNames().forEachRemaining(names::add);
            Collections.sort(names);
            names.forEach(name -> sorted.set(name, canonical(node.get(name))));
            return sorted;
        }
        if (node.isArray()) {
            ArrayNode array = mapper.createArrayNode();
            node.forEach(element -> array.add(canonical(element)));
            return array;
        }
        return node;
    }
}
