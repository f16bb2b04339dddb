package dev.herald.live;

import dev.herald.api.ConnectionHandlers;
import dev.herald.auth.Caller;
import dev.herald.auth.VerifiedTokenCache;
import dev.herald.inbox.InboxItemView;
import dev.herald.limits.RateLimitFilter;
import io.micronaut.context.BeanProvider;
import io.micronaut.context.annotation.Requires;
import io.micronaut.context.event.BeanCreatedEvent;
import io.micronaut.context.event.BeanCreatedEventListener;
import io.micronaut.http.netty.channel.ChannelPipelineCustomizer;
import io.micronaut.http.server.netty.NettyServerCustomizer;
import io.netty.buffer.ByteBuf;
import io.netty.channel.Channel;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelDuplexHandler;
import io.netty.channel.ChannelPipeline;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpMethod;
import io.netty.handler.codec.http.HttpRequest;
import io.netty.handler.codec.http.HttpResponse;
import io.netty.handler.codec.http.LastHttpContent;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.handler.codec.http.QueryStringDecoder;
import io.netty.util.ReferenceCountUtil;
import jakarta.inject.Singleton;
import reactor.core.publisher.Mono;
import reactor.core.scheduler.Schedulers;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Executor;

/**
 * Serves {@code GET /v1/inbox/stream} on HTTP/1.1 connections straight from Netty, the way
 * {@link StreamController} does through Micronaut, but without Micronaut's request, its reactive body
 * writer and its per-connection handlers kept for the life of every stream: each event is written to
 * the connection as one preformatted chunk, and a fan-out hands each event loop its connections' events
 * in a few tasks ({@link LiveHub}). That makes an idle stream cost a few KB and an event a few µs.
 *
 * <p>The request is taken only when it can be served: a user token (header, else {@code ?access_token=})
 * that micronaut-security-jwt accepts, a readable {@code Last-Event-ID} and {@code ack}, the user within
 * their rate limit, and the first events read from PostgreSQL. Anything else (no or a bad token, an app
 * key, bad parameters, over the limit, PostgreSQL away) goes on to Micronaut and the controller, which
 * answer with the contract's problem. Once taken, the connection serves that stream only: it stays open
 * until the client closes it, and anything the client sends on it is discarded.
 * {@code herald.stream.direct=false} leaves every stream to Micronaut.
 */
@Singleton
@Requires(property = "herald.stream.direct", notEquals = "false")
class StreamChannels implements BeanCreatedEventListener<NettyServerCustomizer.Registry> {

    private static final String HANDLER = ConnectionHandlers.STREAM;
    private static final byte[] HEAD = ("HTTP/1.1 200 OK\r\n"
            + "content-type: text/event-stream\r\n"
            + "cache-control: no-cache\r\n"
            + "transfer-encoding: chunked\r\n\r\n").getBytes(StandardCharsets.US_ASCII);
    private static final byte[] LAST_CHUNK = "0\r\n\r\n".getBytes(StandardCharsets.US_ASCII);

    private final BeanProvider<LiveHub> hub;
    private final BeanProvider<StreamStart> start;
    private final BeanProvider<VerifiedTokenCache> tokens;
    private final BeanProvider<RateLimitFilter> limits;
    /**
     * A client this far behind (bytes not yet taken by its connection; {@code herald.stream.max-pending},
     * 4 MiB) is disconnected, as a stream whose queue would otherwise grow without end; it replays what
     * it missed when it reconnects.
     */
    private final long maxPending;

    // the listener is created with the server; what it uses is looked up at the first stream
    StreamChannels(BeanProvider<LiveHub> hub, BeanProvider<StreamStart> start,
                   BeanProvider<VerifiedTokenCache> tokens, BeanProvider<RateLimitFilter> limits,
                   @io.micronaut.context.annotation.Value("${herald.stream.max-pending:4194304}") long maxPending) {
        this.maxPending = maxPending;
        this.hub = hub;
        this.start = start;
        this.tokens = tokens;
        this.limits = limits;
    }

    @Override
    public NettyServerCustomizer.Registry onCreated(BeanCreatedEvent<NettyServerCustomizer.Registry> event) {
        event.getBean().register(ConnectionHandlers.installing(HANDLER, List.of(), Handler::new));
        return event.getBean();
    }

    /** What a stream request asks for, once it was read. */
    private record Ask(String token, long after, boolean ack) {
    }

    /** The stream request in {@code request}, or null when Micronaut is to answer it. */
    private static Ask ask(HttpRequest request) {
        if (request.method() != HttpMethod.GET || request.protocolVersion() != HttpVersion.HTTP_1_1
                || !request.decoderResult().isSuccess() || !request.uri().startsWith(QueryTokenReader.PATH)) {
            return null;
        }
        QueryStringDecoder uri = new QueryStringDecoder(request.uri());
        Map<String, List<String>> query;
        try {
            if (!QueryTokenReader.PATH.equals(uri.path())) {
                return null;
            }
            query = uri.parameters();
        } catch (IllegalArgumentException malformed) {
            return null; // a bad escape: Micronaut answers 400
        }
        String token = null;
        String authorization = request.headers().get(HttpHeaderNames.AUTHORIZATION);
        if (authorization != null) {
            if (!authorization.regionMatches(true, 0, "Bearer ", 0, 7)) {
                return null;
            }
            token = authorization.substring(7).trim();
        } else if (query.containsKey("access_token")) {
            token = query.get("access_token").get(0).trim();
        }
        if (token == null || token.isEmpty()) {
            return null;
        }
        long after = -1;
        String lastEventId = request.headers().get("Last-Event-ID");
        if (lastEventId != null) {
            after = InboxItemView.parseId(lastEventId.trim());
            if (after <= 0) {
                return null;
            }
        }
        boolean ack = false;
        List<String> acks = query.get("ack");
        if (acks != null) {
            if (acks.size() != 1 || !(acks.get(0).equalsIgnoreCase("true") || acks.get(0).equalsIgnoreCase("false"))) {
                return null;
            }
            ack = acks.get(0).equalsIgnoreCase("true");
        }
        return new Ask(token, after, ack);
    }

    /** The user, once the token is verified and the user is within their rate limit; empty: Micronaut answers. */
    private Mono<String> admit(Ask ask) {
        return Mono.from(tokens.get().validateToken(ask.token(), null))
                .mapNotNull(authentication -> {
                    try {
                        return Caller.of(authentication) instanceof Caller.User user ? user.userId() : null;
                    } catch (RuntimeException invalid) {
                        return null;
                    }
                })
                .filterWhen(user -> limits.find(null)
                        .map(l -> Mono.fromCompletionStage(l.admitsUser(user)))
                        .orElse(Mono.just(true)));
    }

    /**
     * One connection's stream handler. Until a stream request arrives it passes everything on to
     * Micronaut; while it decides, it holds the request (Micronaut reads nothing more meanwhile); once it
     * took the request, the connection is the stream's.
     */
    private final class Handler extends ChannelDuplexHandler implements LiveHub.Outlet {
        private List<Object> held;
        /** Requests handed to Micronaut on this connection, and its final answers written (pipelining). */
        private long passed;
        private long answered;
        /** After {@link #end}: nothing more is written. */
        private boolean ended;
        private Channel channel;
        private LiveHub.Stream stream;
        private boolean taken;

        @Override
        public void channelRead(ChannelHandlerContext ctx, Object msg) {
            if (taken) {
                ReferenceCountUtil.release(msg);
                return;
            }
            if (held != null) {
                held.add(msg);
                return;
            }
            // a request pipelined behind one Micronaut still answers is Micronaut's too (its answer comes first)
            Ask ask = msg instanceof HttpRequest request && passed == answered ? ask(request) : null;
            if (ask == null) {
                if (msg instanceof HttpRequest) {
                    passed++;
                }
                ctx.fireChannelRead(msg);
                return;
            }
            held = new ArrayList<>(2);
            held.add(msg);
            decide(ctx, ask);
        }

        @Override
        public void channelReadComplete(ChannelHandlerContext ctx) {
            if (held == null && !taken) {
                ctx.fireChannelReadComplete();
            }
        }

        @Override
        public void write(ChannelHandlerContext ctx, Object msg, io.netty.channel.ChannelPromise promise) {
            // Micronaut's answers pass here on their way to the codec: the end of one that is not interim (1xx)
            if (msg instanceof LastHttpContent && !(msg instanceof HttpResponse r && r.status().codeClass()
                    == io.netty.handler.codec.http.HttpStatusClass.INFORMATIONAL)) {
                answered++;
            }
            ctx.write(msg, promise);
        }

        private void decide(ChannelHandlerContext ctx, Ask ask) {
            Executor loop = ctx.executor();
            Mono<String> admitted;
            try {
                admitted = admit(ask);
            } catch (RuntimeException e) {
                pass(ctx);
                return;
            }
            admitted
                    .flatMap(user -> Mono.fromCallable(() -> start.get().firstEvents(user, ask.after()))
                            .subscribeOn(Schedulers.boundedElastic())
                            .map(first -> (Runnable) () -> take(ctx, user, ask.ack(), first)))
                    .subscribe(
                            taking -> loop.execute(taking),
                            failed -> loop.execute(() -> pass(ctx)),
                            () -> loop.execute(() -> {
                                if (!taken) {
                                    pass(ctx);
                                }
                            }));
        }

        /** Micronaut answers the held request (the contract's problem for whatever was wrong with it). */
        private void pass(ChannelHandlerContext ctx) {
            List<Object> messages = held;
            held = null;
            if (messages == null) {
                return;
            }
            for (Object m : messages) {
                if (m instanceof HttpRequest) {
                    passed++;
                }
                ctx.fireChannelRead(m);
            }
            ctx.fireChannelReadComplete();
        }

        /** On the event loop: the connection becomes the stream's; Micronaut's handlers leave it. */
        private void take(ChannelHandlerContext ctx, String userId, boolean ack, List<SseEvent> first) {
            List<Object> messages = held;
            if (messages == null) {
                return; // the client went away meanwhile
            }
            held = null;
            taken = true;
            messages.forEach(ReferenceCountUtil::release);
            channel = ctx.channel();
            if (!channel.isActive()) {
                return;
            }
            ChannelPipeline pipeline = ctx.pipeline();
            while (pipeline.last() != this) {
                pipeline.removeLast();
            }
            pipeline.remove(ChannelPipelineCustomizer.HANDLER_HTTP_SERVER_CODEC);
            if (pipeline.get(ChannelPipelineCustomizer.HANDLER_IDLE_STATE) != null) {
                // the stream's pings keep it from being idle; a timer fewer per connection
                pipeline.remove(ChannelPipelineCustomizer.HANDLER_IDLE_STATE);
            }
            ByteBuf opening = channel.alloc().directBuffer(512);
            opening.writeBytes(HEAD);
            first.forEach(e -> e.writeChunk(opening));
            channel.writeAndFlush(opening, channel.voidPromise());
            stream = hub.get().attach(userId, ack, this);
            channel.config().setAutoRead(true);
        }

        @Override
        public void channelInactive(ChannelHandlerContext ctx) {
            if (held != null) {
                held.forEach(ReferenceCountUtil::release);
                held = null;
            }
            if (stream != null) {
                hub.get().detach(stream);
                stream = null;
            }
            ctx.fireChannelInactive();
        }

        @Override
        public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
            if (taken) {
                // the client went away mid-write, or reset the connection: the stream ends
                ctx.close();
            } else {
                ctx.fireExceptionCaught(cause);
            }
        }

        @Override
        public Executor loop() {
            return channel.eventLoop();
        }

        private void onLoop(Runnable task) {
            if (channel.eventLoop().inEventLoop()) {
                task.run();
                return;
            }
            try {
                channel.eventLoop().execute(task);
            } catch (java.util.concurrent.RejectedExecutionException stopping) {
                // the server's event loops are stopping, and the connection with them
            }
        }

        @Override
        public void sendHere(SseEvent event) {
            if (ended || !channel.isActive()) {
                return;
            }
            var outbound = channel.unsafe().outboundBuffer();
            if (outbound != null && outbound.totalPendingWriteBytes() > maxPending) {
                channel.close();
                return;
            }
            channel.writeAndFlush(event.chunk(channel.alloc()), channel.voidPromise());
        }

        @Override
        public void end(SseEvent last) {
            onLoop(() -> {
                if (!ended && channel.isActive()) {
                    ended = true;
                    channel.write(last.chunk(channel.alloc()), channel.voidPromise());
                    channel.writeAndFlush(channel.alloc().buffer(LAST_CHUNK.length).writeBytes(LAST_CHUNK))
                            .addListener(io.netty.channel.ChannelFutureListener.CLOSE);
                }
            });
        }
    }
}
