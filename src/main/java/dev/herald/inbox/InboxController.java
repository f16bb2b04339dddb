package dev.herald.inbox;

import dev.herald.api.ApiException;
import dev.herald.api.Cursors;
import dev.herald.api.Page;
import dev.herald.auth.Caller;
import dev.herald.delivery.AfterCommit;
import io.micronaut.core.annotation.Nullable;
import io.micronaut.http.HttpStatus;
import io.micronaut.http.annotation.Controller;
import io.micronaut.http.annotation.Delete;
import io.micronaut.http.annotation.Get;
import io.micronaut.http.annotation.PathVariable;
import io.micronaut.http.annotation.Post;
import io.micronaut.http.annotation.QueryValue;
import io.micronaut.http.annotation.Status;
import io.micronaut.scheduling.TaskExecutors;
import io.micronaut.scheduling.annotation.ExecuteOn;
import io.micronaut.security.annotation.Secured;
import io.micronaut.security.authentication.Authentication;
import io.micronaut.security.rules.SecurityRule;
import io.micronaut.serde.annotation.Serdeable;
import io.micronaut.transaction.annotation.Transactional;
import io.swagger.v3.oas.annotations.Operation;
import io.swagger.v3.oas.annotations.tags.Tag;

import java.time.Clock;
import java.util.List;
import java.util.regex.Pattern;

/**
 * {@code /v1/inbox} (user JWT): the caller's in-app inbox, for one app ({@code ?app=}) or across all
 * apps. Another user's item is 404.
 */
@Controller("/v1/inbox")
@Secured(SecurityRule.IS_AUTHENTICATED)
@Tag(name = "Inbox")
class InboxController {

    private static final Pattern APP_ID = Pattern.compile("[a-z0-9][a-z0-9-]{1,39}");
    private static final Pattern INSTALLATION_ID = Pattern.compile("[A-Za-z0-9._-]{1,128}");

    private final InboxStore store;
    private final InboxSync sync;
    private final Clock clock;

    private final io.micronaut.transaction.TransactionOperations<java.sql.Connection> transactions;

    private final dev.herald.delivery.DeliveryStore deliveries;

    InboxController(InboxStore store, InboxSync sync, Clock clock, dev.herald.delivery.DeliveryStore deliveries,
                    io.micronaut.transaction.TransactionOperations<java.sql.Connection> transactions) {
        this.transactions = transactions;
        this.deliveries = deliveries;
        this.store = store;
        this.sync = sync;
        this.clock = clock;
    }

    @Serdeable
    record InboxPage(List<InboxItemView> items, long unreadCount, @Nullable String nextCursor) {
    }

    @Serdeable
    record Unread(long unread) {
    }

    @Serdeable
    record Updated(int updated) {
    }

    @Get
    @ExecuteOn(TaskExecutors.BLOCKING)
    @Transactional
    @Operation(summary = "The caller's inbox: unread first, then newest")
    InboxPage list(Authentication authentication, @Nullable @QueryValue String app, @Nullable @QueryValue Boolean unreadOnly,
                   @Nullable @QueryValue Integer limit, @Nullable @QueryValue String cursor) {
        Caller.User user = Caller.of(authentication).requireUser();
        checkApp(app);
        int pageSize = Cursors.limit(limit);
        long[] after = position(Cursors.decode(cursor));
        List<InboxStore.Item> rows = store.page(user.userId(), app, Boolean.TRUE.equals(unreadOnly), after, pageSize + 1);
        Page<InboxStore.Item> page = Page.of(rows, pageSize, i -> (i.readAt() == null ? 0 : 1) + ":" + i.id());
        return new InboxPage(page.items().stream().map(InboxItemView::of).toList(), store.unreadCount(user.userId(), app),
                page.nextCursor());
    }

    @Get("/unread-count")
    @ExecuteOn(TaskExecutors.BLOCKING)
    @Transactional
    @Operation(summary = "How many of the caller's items are unread")
    Unread unreadCount(Authentication authentication, @Nullable @QueryValue String app) {
        Caller.User user = Caller.of(authentication).requireUser();
        checkApp(app);
        return new Unread(store.unreadCount(user.userId(), app));
    }

    @Post("/{id}/read")
    @ExecuteOn(TaskExecutors.BLOCKING)
    @Transactional
    @Status(HttpStatus.NO_CONTENT)
    @Operation(summary = "Mark one item read")
    void read(Authentication authentication, @PathVariable String id, @Nullable @QueryValue String installationId) {
        changeItem(authentication, id, installationId, (user, itemId) -> store.markRead(user, itemId, clock.instant()));
    }

    @Post("/read-all")
    @ExecuteOn(TaskExecutors.BLOCKING)
    @Transactional
    @Operation(summary = "Mark every unread item read (of one app, or all)")
    Updated readAll(Authentication authentication, @Nullable @QueryValue String app,
                    @Nullable @QueryValue String installationId) {
        Caller.User user = Caller.of(authentication).requireUser();
        checkApp(app);
        checkInstallation(installationId);
        java.util.Map<String, Integer> readByApp = store.readAll(user.userId(), app, clock.instant());
        if (!readByApp.isEmpty()) {
            AfterCommit.run(transactions, () -> sync.changed(user.userId(), readByApp.keySet(), installationId));
        }
        return new Updated(readByApp.values().stream().mapToInt(Integer::intValue).sum());
    }

    @Delete("/{id}")
    @ExecuteOn(TaskExecutors.BLOCKING)
    @Transactional
    @Status(HttpStatus.NO_CONTENT)
    @Operation(summary = "Delete one item")
    void delete(Authentication authentication, @PathVariable String id, @Nullable @QueryValue String installationId) {
        changeItem(authentication, id, installationId, store::delete);
    }

    /**
     * Reads or deletes one of the caller's items ({@code change} answers its app, or null when the user
     * has no such item: 404), then tells the user's other places once the transaction committed.
     */
    private void changeItem(Authentication authentication, String id, String installationId,
                            java.util.function.BiFunction<String, Long, String> change) {
        Caller.User user = Caller.of(authentication).requireUser();
        checkInstallation(installationId);
        long itemId = InboxItemView.parseId(id);
        String found = itemId < 0 ? null : change.apply(user.userId(), itemId);
        if (found == null && itemId > 0) {
            if (deliveries.shownNotStored(user.userId(), itemId)) {
                throw ApiException.notStoredYet("This inbox item");
            }
            // its chunk may have been stored in between
            found = change.apply(user.userId(), itemId);
        }
        String app = found;
        if (app == null) {
            throw ApiException.notFound("Inbox item");
        }
        AfterCommit.run(transactions, () -> sync.changed(user.userId(), List.of(app), installationId));
    }

    private static long[] position(String position) {
        if (position == null) {
            return null;
        }
        String[] parts = position.split(":");
        try {
            long[] after = {Long.parseLong(parts[0]), Long.parseLong(parts[1])};
            if (parts.length == 2 && (after[0] == 0 || after[0] == 1)) {
                return after;
            }
        } catch (RuntimeException ignored) {
            // falls through to the 400
        }
        throw ApiException.invalid("cursor", "is not a cursor this list gave out");
    }

    private static void checkApp(String app) {
        if (app != null && !APP_ID.matcher(app).matches()) {
            throw ApiException.invalid("app", "must be an app id");
        }
    }

    private static void checkInstallation(String installationId) {
        if (installationId != null && !INSTALLATION_ID.matcher(installationId).matches()) {
            throw ApiException.invalid("installationId", "must be 1 to 128 of A-Z, a-z, 0-9, '.', '_' and '-'");
        }
    }
}
