package dev.herald.email;

import dev.herald.apps.AppStore;
import dev.herald.delivery.AppGateways;
import dev.herald.delivery.Backoff;
import dev.herald.delivery.DeliveryStore;
import dev.herald.notifications.NotificationRequest;
import dev.herald.notifications.NotificationStore;
import dev.herald.notifications.StoredNotification;
import dev.herald.preferences.PreferenceStore;
import dev.herald.preferences.Preferences;
import io.micrometer.core.instrument.MeterRegistry;
import io.micronaut.context.annotation.Context;
import io.micronaut.context.annotation.Requires;
import io.micronaut.context.annotation.Value;
import io.micronaut.email.Email;
import io.micronaut.email.EmailException;
import io.micronaut.email.MultipartBody;
import io.micronaut.email.javamail.sender.JavaxEmailSender;
import jakarta.annotation.PreDestroy;
import jakarta.mail.MessagingException;
import jakarta.mail.SendFailedException;
import org.eclipse.angus.mail.smtp.SMTPAddressFailedException;
import org.eclipse.angus.mail.smtp.SMTPSendFailedException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.locks.LockSupport;

/**
 * Step 4 of routing: emails a user whom no push (and no live event) reached. Email steps wait in
 * {@code deliveries} as {@code queued}; this worker claims the due ones ({@code FOR UPDATE SKIP LOCKED},
 * a lease, so any node may take them) and decides: while a push of the user is still queued, look again
 * in 2 s; a push accepted by a gateway, or a live event, reached them ({@code suppressed / pushed},
 * {@code suppressed / present}); else send, in the user's locale, as HTML and plain text with the link.
 * An SMTP failure that may pass (connection, 4xx) is retried with the pushes' backoff until the
 * notification's TTL ({@code expired}); a refusal (5xx) ends it {@code failed} with the server's code.
 */
@Context
@Requires(property = "herald.email.worker", notEquals = "false")
class EmailWorker implements AutoCloseable {

    private static final Logger LOG = LoggerFactory.getLogger(EmailWorker.class);
    static final Duration LEASE = Duration.ofSeconds(60);
    static final Duration PUSH_WAIT = Duration.ofSeconds(2);

    private final DeliveryStore deliveries;
    private final NotificationStore notifications;
    private final PreferenceStore preferences;
    private final AppGateways apps;
    private final JavaxEmailSender sender;
    private final MeterRegistry meters;
    private final Clock clock;
    private final Duration poll;
    private final Thread thread;
    private volatile boolean running = true;

    EmailWorker(DeliveryStore deliveries, NotificationStore notifications, PreferenceStore preferences, AppGateways apps,
                JavaxEmailSender sender, MeterRegistry meters, Clock clock,
                @Value("${herald.email.poll:1s}") Duration poll) {
        this.deliveries = deliveries;
        this.notifications = notifications;
        this.preferences = preferences;
        this.apps = apps;
        this.sender = sender;
        this.meters = meters;
        this.clock = clock;
        this.poll = poll;
        this.thread = new Thread(this::loop, "email-worker");
        thread.setDaemon(true);
        thread.start();
    }

    private void loop() {
        while (running) {
            int done = 0;
            try {
                List<DeliveryStore.ClaimedEmail> claimed = deliveries.claimDueEmails(clock.instant(), LEASE, 50);
                for (DeliveryStore.ClaimedEmail email : claimed) {
                    handle(email);
                    done++;
                }
            } catch (RuntimeException e) {
                LOG.warn("Email worker: {}", e.toString());
            }
            if (done == 0) {
                LockSupport.parkNanos(poll.toNanos());
            }
        }
    }

    private void handle(DeliveryStore.ClaimedEmail email) {
        Instant now = clock.instant();
        if (now.isAfter(email.expiresAt())) {
            finish(email, "expired", null, null, false);
            return;
        }
        Map<String, Long> steps = deliveries.userSteps(email.notificationId(), email.userId());
        if (steps.keySet().stream().anyMatch(k -> k.startsWith("push:queued"))) {
            finish(email, "queued", null, now.plus(PUSH_WAIT), false);
            return;
        }
        if (reached(steps, "live")) {
            finish(email, "suppressed", "present", null, false);
            return;
        }
        if (reached(steps, "push")) {
            finish(email, "suppressed", "pushed", null, false);
            return;
        }
        Preferences prefs = preferences.find(email.userId());
        Optional<AppStore.StoredApp> app = apps.app(email.appId());
        String from = app.map(a -> a.document().path("email").path("from").asText(null)).orElse(null);
        Optional<StoredNotification> notification = notifications.find(email.appId(), email.notificationId());
        if (prefs.email() == null || from == null || notification.isEmpty()) {
            finish(email, "suppressed", "not_configured", null, false);
            return;
        }
        if (email.test()) {
            finish(email, "simulated", null, null, false);
            return;
        }
        NotificationRequest request = notification.get().request();
        String locale = prefs.locale();
        String appName = app.get().document().path("name").asText(email.appId());
        EmailContent content = EmailContent.of(appName,
                request.title() == null ? null : request.title().forLocale(locale),
                request.body() == null ? null : request.body().forLocale(locale), request.link());
        if (!deliveries.takeEmail(email.id(), email.attempts(), clock.instant().plus(LEASE))) {
            return; // another node took it after this node's lease ran out
        }
        DeliveryStore.ClaimedEmail taken = new DeliveryStore.ClaimedEmail(email.id(), email.notificationId(),
                email.userId(), email.attempts() + 1, email.appId(), email.test(), email.request(), email.expiresAt());
        try {
            sender.send(Email.builder().from(from).to(prefs.email()).subject(content.subject())
                    .body(new MultipartBody(content.html(), content.text())).build());
            finish(taken, "sent", null, null, false);
            meters.counter("herald.email.results", "app", email.appId(), "outcome", "sent").increment();
        } catch (EmailException e) {
            String code = smtpCode(e);
            boolean permanent = code != null && code.startsWith("5");
            meters.counter("herald.email.results", "app", email.appId(), "outcome", permanent ? "failed" : "retry").increment();
            if (permanent) {
                finish(taken, "failed", "smtp_" + code, null, false);
            } else {
                Instant next = now.plus(Backoff.after(taken.attempts(), null));
                LOG.info("Email for notification {} not sent ({}); trying again at {}", email.notificationId(),
                        code == null ? "connection" : "smtp_" + code, next);
                finish(taken, "queued", code == null ? "connection" : "smtp_" + code, next, false);
            }
        }
    }

    /**
     * Whether a step of the channel reached the user: accepted by a gateway, or on a live stream (one
     * that acknowledges each event counts once it acknowledged: {@code delivered}). Keys are
     * {@code channel:status[:reason]}.
     */
    private static boolean reached(Map<String, Long> steps, String channel) {
        for (Map.Entry<String, Long> step : steps.entrySet()) {
            String[] parts = step.getKey().split(":", 3);
            if (step.getValue() > 0 && parts[0].equals(channel) && List.of("sent", "delivered", "opened", "simulated")
                    .contains(parts[1]) && !(parts.length == 3 && parts[2].equals(DeliveryStore.AWAITING_ACK))) {
                return true;
            }
        }
        return false;
    }

    /** The SMTP reply code in the failure, e.g. {@code 550}, or null for a connection failure. */
    static String smtpCode(Throwable e) {
        for (Throwable t = e; t != null; t = t.getCause()) {
            if (t instanceof SMTPAddressFailedException f) {
                return Integer.toString(f.getReturnCode());
            }
            if (t instanceof SMTPSendFailedException f) {
                return Integer.toString(f.getReturnCode());
            }
            if (t instanceof SendFailedException s && s.getNextException() != null) {
                String nested = smtpCode(s.getNextException());
                if (nested != null) {
                    return nested;
                }
            }
            if (t instanceof MessagingException m && m.getNextException() != null && m.getNextException() != t) {
                String nested = smtpCode(m.getNextException());
                if (nested != null) {
                    return nested;
                }
            }
        }
        return null;
    }

    private void finish(DeliveryStore.ClaimedEmail email, String status, String reason, Instant next, boolean attempted) {
        deliveries.finishEmail(email.id(), email.attempts(), status, reason, next, attempted, clock.instant());
    }

    @PreDestroy
    @Override
    public void close() {
        running = false;
        thread.interrupt();
        try {
            thread.join(5_000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
