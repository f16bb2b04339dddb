package dev.herald.stats;

import dev.herald.api.ApiException;
import dev.herald.api.Problem;
import dev.herald.auth.Caller;
import io.micronaut.core.annotation.Nullable;
import io.micronaut.http.annotation.Controller;
import io.micronaut.http.annotation.Get;
import io.micronaut.http.annotation.QueryValue;
import io.micronaut.scheduling.TaskExecutors;
import io.micronaut.scheduling.annotation.ExecuteOn;
import io.micronaut.security.annotation.Secured;
import io.micronaut.security.authentication.Authentication;
import io.micronaut.security.rules.SecurityRule;
import io.micronaut.serde.annotation.Serdeable;
import io.swagger.v3.oas.annotations.Operation;
import io.swagger.v3.oas.annotations.tags.Tag;

import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.format.DateTimeParseException;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * {@code GET /v1/stats}: deliveries counted by the status they reached, per channel, in minute, hour or
 * day buckets (UTC), with the reasons of failures and suppressions over the range. Admin key (any app,
 * {@code app} required) or an app key with scope {@code admin} (its own app).
 */
@Controller("/v1/stats")
@Secured(SecurityRule.IS_AUTHENTICATED)
@ExecuteOn(TaskExecutors.BLOCKING)
@Tag(name = "Statistics")
class StatsController {

    private final StatsStore store;
    private final dev.herald.apps.AppStore apps;
    private final Clock clock;

    StatsController(StatsStore store, dev.herald.apps.AppStore apps, Clock clock) {
        this.store = store;
        this.apps = apps;
        this.clock = clock;
    }

    /**
     * The answer: {@code buckets} as the contract says; added: {@code reasons} (why deliveries failed or
     * were suppressed, over the range), {@code calls} ({@code rang} / {@code not_rung}, {@code ended} with
     * its reason) and {@code tokensRemoved} (status {@code push} or {@code voip}, the gateway's reason).
     */
    @Serdeable
    record Stats(String app, String bucket, Instant from, Instant to, List<StatsStore.Bucket> buckets,
                 List<StatsStore.Reason> reasons, List<StatsStore.Event> calls, List<StatsStore.Event> tokensRemoved) {
    }

    @Get
    @Operation(summary = "Delivery statistics of an app (admin key, or its app key with scope admin)")
    Stats stats(Authentication authentication, @Nullable @QueryValue String app, @Nullable @QueryValue String from,
                @Nullable @QueryValue String to, @Nullable @QueryValue String bucket) {
        Caller caller = Caller.of(authentication);
        if (caller instanceof Caller.User) {
            throw ApiException.forbidden("Statistics take the admin key or an app key with scope admin");
        }
        String appId = app;
        if (appId == null && caller instanceof Caller.AppKey key) {
            appId = key.appId();
        }
        if (appId != null) {
            // who may ask comes before what was asked: a key without the admin scope gets 403, not 400
            caller.requireAppAdmin(appId);
            if (caller instanceof Caller.Admin && apps.find(appId).isEmpty()) {
                throw ApiException.notFound("App");
            }
        }
        List<Problem.FieldError> errors = new ArrayList<>();
        if (appId == null) {
            errors.add(new Problem.FieldError("app", "is required with the admin key"));
        }
        StatsBucket size = StatsBucket.HOUR;
        if (bucket != null) {
            try {
                size = StatsBucket.valueOf(bucket.toUpperCase(Locale.ROOT));
            } catch (IllegalArgumentException e) {
                errors.add(new Problem.FieldError("bucket", "must be minute, hour or day"));
            }
        }
        Instant now = clock.instant();
        Instant end = time(to, "to", now, errors);
        Instant start = time(from, "from", end.minus(Duration.ofDays(1)), errors);
        if (errors.isEmpty() && !start.isBefore(end)) {
            errors.add(new Problem.FieldError("from", "must be before to"));
        }
        if (errors.isEmpty() && Duration.between(start, end).compareTo(size.longestRange()) > 0) {
            errors.add(new Problem.FieldError("from", size.wire() + " buckets cover at most "
                    + size.longestRange().toDays() + " days; ask for larger buckets"));
        }
        if (!errors.isEmpty()) {
            throw ApiException.invalid(errors);
        }
        return new Stats(appId, size.wire(), start, end, store.buckets(appId, size, start, end),
                store.reasons(appId, size, start, end), store.events(appId, StatsCounter.CALL, size, start, end),
                store.events(appId, StatsCounter.TOKEN, size, start, end));
    }

    private static Instant time(@Nullable String value, String field, Instant otherwise, List<Problem.FieldError> errors) {
        if (value == null || value.isBlank()) {
            return otherwise;
        }
        try {
            return Instant.parse(value);
        } catch (DateTimeParseException e) {
            errors.add(new Problem.FieldError(field, "must be an RFC 3339 time in UTC, like 2026-11-30T12:00:00Z"));
            return otherwise;
        }
    }
}
