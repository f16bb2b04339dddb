package dev.herald.live;

import dev.herald.auth.Caller;
import dev.herald.inbox.InboxItemView;
import io.micronaut.core.annotation.Nullable;
import io.micronaut.http.MediaType;
import io.micronaut.http.annotation.Controller;
import io.micronaut.http.annotation.Get;
import io.micronaut.http.annotation.Header;
import io.micronaut.http.annotation.QueryValue;
import io.micronaut.http.sse.Event;
import io.micronaut.security.annotation.Secured;
import io.micronaut.security.authentication.Authentication;
import io.micronaut.security.rules.SecurityRule;
import io.swagger.v3.oas.annotations.Operation;
import io.swagger.v3.oas.annotations.tags.Tag;
import org.reactivestreams.Publisher;
import reactor.core.publisher.Mono;
import reactor.core.scheduler.Schedulers;

/**
 * {@code GET /v1/inbox/stream} (user JWT, by header or {@code ?access_token=}): the user's live events as
 * Server-Sent Events. It opens with {@code unread}; with {@code Last-Event-ID} it first replays the
 * notifications the user missed after that event; then {@code notification}, {@code unread},
 * {@code call.incoming}, {@code call.ended} as they happen, and {@code ping} to keep the line open.
 * With {@code ?ack=true} each notification must be acknowledged ({@code POST /v1/receipts}, event
 * {@code received}) within {@code HERALD_LIVE_ACK_TIMEOUT}, or its push goes out as if the user were away.
 */
@Controller
@Secured(SecurityRule.IS_AUTHENTICATED)
@Tag(name = "Inbox")
class StreamController {

    private final LiveHub hub;
    private final StreamStart start;

    StreamController(LiveHub hub, StreamStart start) {
        this.hub = hub;
        this.start = start;
    }

    @Get(uri = QueryTokenReader.PATH, produces = MediaType.TEXT_EVENT_STREAM)
    @Operation(summary = "The caller's live events (Server-Sent Events)")
    Publisher<Event<String>> stream(Authentication authentication,
                                    @Nullable @Header("Last-Event-ID") String lastEventId,
                                    @Nullable @QueryValue("access_token") String accessToken,
                                    @Nullable @QueryValue Boolean ack) {
        Caller.User user = Caller.of(authentication).requireUser();
        long after = lastEventId == null ? -1 : InboxItemView.parseId(lastEventId.trim());
        return Mono.fromCallable(() -> start.firstEvents(user.userId(), after))
                .subscribeOn(Schedulers.boundedElastic())
                .flatMapMany(first -> hub.open(user.userId(), first, Boolean.TRUE.equals(ack)));
    }
}
