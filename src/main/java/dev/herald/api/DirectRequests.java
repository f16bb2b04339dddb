package dev.herald.api;

import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import io.micronaut.context.BeanProvider;
import io.micronaut.core.annotation.Nullable;
import io.micronaut.json.JsonMapper;
import io.micronaut.context.event.BeanCreatedEvent;
import io.micronaut.context.event.BeanCreatedEventListener;
import io.micronaut.http.server.netty.NettyServerCustomizer;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufOutputStream;
import io.netty.channel.ChannelDuplexHandler;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelPromise;
import io.netty.handler.codec.http.DefaultFullHttpResponse;
import io.netty.handler.codec.http.DefaultHttpHeadersFactory;
import io.netty.handler.codec.http.HttpContent;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpHeaderValues;
import io.netty.handler.codec.http.HttpHeaders;
import io.netty.handler.codec.http.HttpRequest;
import io.netty.handler.codec.http.HttpResponse;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpStatusClass;
import io.netty.handler.codec.http.HttpUtil;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.handler.codec.http.LastHttpContent;
import io.netty.util.ReferenceCountUtil;
import jakarta.inject.Singleton;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.time.ZoneOffset;
import java.time.ZonedDateTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.Executor;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.TimeUnit;

/**
 * Serves a few hot requests on HTTP/1.1 connections straight from Netty, as {@code live.StreamChannels}
 * serves streams: the request is read here, handed to the {@link Endpoint} that asked for it, and
 * answered with the status, headers and body its Micronaut controller would give, without Micronaut's
 * routing, filters and reactive body handling on the way, which cost more event-loop time per request
 * than everything else together. Endpoints: device registrations ({@code devices.DirectRegistrations})
 * and notifications ({@code notifications.DirectNotifications}).
 *
 * <p>Only the common case is served here: an HTTP/1.1 request with a bearer credential and an
 * uncompressed JSON body up to the endpoint's size, on a connection where Micronaut owes no answer.
 * Everything else, and whatever the endpoint declines before doing anything (a bad body, a credential not
 * verified before, a caller over their limit), goes on to Micronaut, which answers it as usual; a request
 * the endpoint refuses after it began is answered here with the same problem. While a request is served
 * here, nothing more is read from its connection; requests pipelined behind it are read, in order, once it
 * was answered.
 */
@Singleton
public class DirectRequests implements BeanCreatedEventListener<NettyServerCustomizer.Registry> {

    static final String HANDLER = ConnectionHandlers.DIRECT;
    /** Answers under this size are never compressed by Micronaut (its default threshold is 1 KiB). */
    private static final int UNCOMPRESSED_ANSWER = 1024;
    /** The answer's headers are ours and known to be valid: not checked again character by character. */
    private static final DefaultHttpHeadersFactory HEADERS = DefaultHttpHeadersFactory.headersFactory()
            .withValidation(false);

    /** A request served straight from Netty; beans of this type are found at the first request. */
    public interface Endpoint {

        /**
         * What this endpoint needs of {@code request}'s head (its path, a header) to serve it, or null when
         * it is not this endpoint's or is left to Micronaut. Called on the event loop, for requests of the
         * endpoint's {@link #method()} only; {@code uri} has no query.
         */
        @Nullable Object ask(HttpRequest request, String uri);

        /** The largest body served here. */
        int maxBody();

        /** The largest answer (in bytes) to a body of {@code length}: a client taking compression gets larger ones from Micronaut. */
        int answerSize(long length);

        /**
         * Serves the request {@link #ask} took, with the bearer's {@code token}, answering on {@code loop}:
         * null, or a stage completing with null, when Micronaut is to answer it (only when nothing was done);
         * a stage failing with an {@link ApiException} for a refusal answered here with its problem. Any
         * other failure is answered as Micronaut answers an unexpected one (503 when PostgreSQL is away,
         * else a 500 with an incident id), never handed on, since the request may have been acted on.
         */
        @Nullable CompletionStage<Answer> serve(Object asked, String token, byte[] body, Executor loop);

        /** The route's method and template in {@code http.server.requests}, so both paths count as one. */
        String method();

        String route();
    }

    /** A served request's answer: its status and JSON body, and what to count just before it is written. */
    public record Answer(int status, Object body, Runnable served) {
    }

    private static final Logger LOG = LoggerFactory.getLogger(DirectRequests.class);

    private final BeanProvider<Endpoint> provider;
    private final BeanProvider<JsonMapper> mapper;
    private final BeanProvider<MeterRegistry> meters;
    private volatile List<Endpoint> endpoints;
    private volatile JsonMapper json;
    private volatile MeterRegistry registry;
    private final Map<List<Object>, Timer> timers = new ConcurrentHashMap<>();

    // the listener is created with the server; what it uses is looked up at the first request
    DirectRequests(BeanProvider<Endpoint> provider, BeanProvider<JsonMapper> mapper, BeanProvider<MeterRegistry> meters) {
        this.provider = provider;
        this.mapper = mapper;
        this.meters = meters;
    }

    /** {@code http.server.requests} under the route's tags, as Micronaut records it, one timer per status and exception. */
    private Timer timer(Endpoint endpoint, int status, String exception) {
        return timers.computeIfAbsent(List.of(endpoint.method(), endpoint.route(), status, exception), k ->
                Timer.builder("http.server.requests")
                        .tags("exception", exception, "method", endpoint.method(), "status", Integer.toString(status),
                                "uri", endpoint.route())
                        .register(registry));
    }

    /** The endpoints, looked up at the first request; none (everything to Micronaut) if that fails. */
    private List<Endpoint> endpoints() {
        List<Endpoint> known = endpoints;
        if (known == null) {
            try {
                json = mapper.get();
                registry = meters.get();
                known = provider.stream().toList();
            } catch (RuntimeException e) {
                LOG.error("Requests served straight from Netty are off: their endpoints could not be created", e);
                known = List.of();
            }
            endpoints = known;
        }
        return known;
    }

    @Override
    public NettyServerCustomizer.Registry onCreated(BeanCreatedEvent<NettyServerCustomizer.Registry> event) {
        // with every endpoint switched off, connections are Micronaut's alone
        if (provider.isPresent()) {
            // behind the stream handler: a stream that takes its connection drops the handlers behind it
            event.getBean().register(ConnectionHandlers.installing(HANDLER, List.of(ConnectionHandlers.STREAM), Handler::new));
        }
        return event.getBean();
    }

    /** A request an endpoint may serve: the endpoint, what it asked, the bearer token, and whether to keep the connection. */
    record Ask(Endpoint endpoint, Object asked, String token, boolean keepAlive) {
    }

    /** The request in {@code request} if an endpoint may serve it here, or null when Micronaut is to have it. */
    Ask ask(HttpRequest request) {
        if (request.protocolVersion() != HttpVersion.HTTP_1_1 || !request.decoderResult().isSuccess()) {
            return null;
        }
        String uri = request.uri();
        if (uri.indexOf('?') >= 0) {
            return null;
        }
        HttpHeaders headers = request.headers();
        String contentType = headers.get(HttpHeaderNames.CONTENT_TYPE);
        long length = HttpUtil.getContentLength(request, -1L);
        if (contentType == null || !(contentType.equalsIgnoreCase("application/json")
                || contentType.regionMatches(true, 0, "application/json;", 0, 17))
                || length < 0
                || headers.contains(HttpHeaderNames.EXPECT) || headers.contains(HttpHeaderNames.TRANSFER_ENCODING)
                // a compressed body is Micronaut's to decode
                || headers.contains(HttpHeaderNames.CONTENT_ENCODING)) {
            return null;
        }
        String method = request.method().name();
        for (Endpoint endpoint : endpoints()) {
            if (!endpoint.method().equals(method)) {
                continue;
            }
            Object asked;
            try {
                asked = endpoint.ask(request, uri);
            } catch (RuntimeException e) {
                asked = null; // Micronaut answers it
            }
            if (asked == null) {
                continue;
            }
            // so is an answer Micronaut might compress (1 KiB and up)
            if (length > endpoint.maxBody() || endpoint.answerSize(length) >= UNCOMPRESSED_ANSWER
                    && headers.contains(HttpHeaderNames.ACCEPT_ENCODING)) {
                return null;
            }
            String token = bearer(request);
            return token == null ? null : new Ask(endpoint, asked, token, HttpUtil.isKeepAlive(request));
        }
        return null;
    }

    private static String bearer(HttpRequest request) {
        String authorization = request.headers().get(HttpHeaderNames.AUTHORIZATION);
        if (authorization == null || !authorization.regionMatches(true, 0, "Bearer ", 0, 7)) {
            return null;
        }
        // a token with more spaces before it is left to Micronaut's own header reader
        String token = authorization.substring(7);
        return token.isEmpty() || Character.isWhitespace(token.charAt(0)) ? null : token;
    }

    /** The {@code date} header, formatted once a second. */
    private static final class Dates {
        private static volatile long second;
        private static volatile String formatted = "";

        static String now() {
            long now = System.currentTimeMillis() / 1000;
            String known = formatted;
            if (now != second || known.isEmpty()) {
                known = DateTimeFormatter.RFC_1123_DATE_TIME.format(
                        ZonedDateTime.ofInstant(java.time.Instant.ofEpochSecond(now), ZoneOffset.UTC));
                formatted = known;
                second = now;
            }
            return known;
        }
    }

    /**
     * One connection's handler. Passes everything to Micronaut until a request an endpoint may serve
     * arrives; holds that request and its body while it is read and served, and reads nothing more
     * meanwhile (the next {@code read} is deferred until the answer is written).
     */
    private final class Handler extends ChannelDuplexHandler {
        /** Requests handed to Micronaut on this connection, and its final answers written (pipelining). */
        private long passed;
        private long answered;
        /** The request being read or served here, and its messages (for Micronaut if declined). */
        private Ask ask;
        private List<Object> held;
        private int bodyBytes;
        private long startedNanos;
        /** Its body is complete: it is being served; reads wait, and what was read meanwhile waits here. */
        private boolean serving;
        private boolean readDeferred;
        private List<Object> waiting;
        /** A close asked for while a request was served: done once it is answered. */
        private ChannelPromise closeRequested;
        /** Micronaut answered with {@code Connection: close}: nothing more is served here. */
        private boolean closing;

        @Override
        public void channelRead(ChannelHandlerContext ctx, Object msg) {
            if (serving) {
                if (waiting == null) {
                    waiting = new ArrayList<>(2);
                }
                waiting.add(msg);
                return;
            }
            if (ask != null) {
                held.add(msg);
                if (msg instanceof HttpContent content) {
                    bodyBytes += content.content().readableBytes();
                    if (bodyBytes > ask.endpoint().maxBody()) {
                        pass(ctx);
                        return;
                    }
                }
                if (msg instanceof LastHttpContent) {
                    serve(ctx);
                }
                return;
            }
            Ask asked = msg instanceof HttpRequest r && passed == answered && !closing ? ask(r) : null;
            if (asked == null) {
                if (msg instanceof HttpRequest) {
                    passed++;
                }
                ctx.fireChannelRead(msg);
                return;
            }
            startedNanos = System.nanoTime();
            ask = asked;
            held = new ArrayList<>(3);
            held.add(msg);
            bodyBytes = 0;
            if (msg instanceof HttpContent content) {
                bodyBytes = content.content().readableBytes();
            }
            if (msg instanceof LastHttpContent) {
                serve(ctx);
            }
        }

        @Override
        public void read(ChannelHandlerContext ctx) {
            if (serving) {
                readDeferred = true;
                return;
            }
            ctx.read();
        }

        @Override
        public void write(ChannelHandlerContext ctx, Object msg, ChannelPromise promise) {
            // Micronaut's answers pass here on their way to the codec: the end of one that is not interim (1xx)
            if (msg instanceof LastHttpContent && !(msg instanceof HttpResponse r
                    && r.status().codeClass() == HttpStatusClass.INFORMATIONAL)) {
                answered++;
            }
            if (msg instanceof HttpResponse r && r.headers().containsValue(HttpHeaderNames.CONNECTION,
                    HttpHeaderValues.CLOSE, true)) {
                closing = true;
            }
            ctx.write(msg, promise);
        }

        @Override
        public void close(ChannelHandlerContext ctx, ChannelPromise promise) {
            if (serving && closeRequested == null) {
                // a graceful shutdown closes idle connections: this one still owes a served request its answer
                closeRequested = promise;
                return;
            }
            ctx.close(promise);
        }

        /** The body is in: store it, then answer, or leave it to Micronaut. */
        private void serve(ChannelHandlerContext ctx) {
            serving = true;
            byte[] body = new byte[bodyBytes];
            int at = 0;
            for (Object m : held) {
                if (m instanceof HttpContent content) {
                    ByteBuf bytes = content.content();
                    int n = bytes.readableBytes();
                    bytes.getBytes(bytes.readerIndex(), body, at, n);
                    at += n;
                }
            }
            CompletionStage<Answer> served;
            try {
                served = ask.endpoint().serve(ask.asked(), ask.token(), body, ctx.executor());
            } catch (RuntimeException e) {
                served = null;
            }
            if (served == null) {
                pass(ctx);
                return;
            }
            List<Object> mine = held;
            served.whenComplete((answer, failed) -> {
                if (ctx.executor().inEventLoop()) {
                    finish(ctx, mine, answer, failed);
                } else {
                    ctx.executor().execute(() -> finish(ctx, mine, answer, failed));
                }
            });
        }

        /**
         * Writes a served request's answer, or the problem the endpoint refused it with once it began (it was
         * already rate-limited and tried here, so not again through Micronaut); a request declined before
         * anything was done goes on to Micronaut.
         */
        private void finish(ChannelHandlerContext ctx, List<Object> mine, Answer answer, Throwable failed) {
            if (held != mine) {
                return; // the connection closed meanwhile
            }
            Throwable cause = failed;
            while (cause instanceof CompletionException && cause.getCause() != null) {
                cause = cause.getCause();
            }
            if (answer == null && cause == null) {
                pass(ctx);
                return;
            }
            ByteBuf body = ctx.alloc().buffer(512);
            HttpResponse response;
            try {
                ApiException refused = null;
                Throwable failure = cause;
                if (answer != null) {
                    try {
                        write(answer.body(), body);
                    } catch (RuntimeException e) {
                        failure = e;
                        refused = unexpected(e);
                    }
                } else {
                    refused = cause instanceof ApiException api ? api
                            : SqlStates.isUnavailable(cause) ? ApiException.databaseUnavailable() : unexpected(cause);
                }
                if (refused != null) {
                    body.clear();
                    write(refused.toProblem(), body);
                }
                int status = refused == null ? answer.status() : refused.type().status().getCode();
                response = new DefaultFullHttpResponse(HttpVersion.HTTP_1_1, HttpResponseStatus.valueOf(status),
                        body, HEADERS, HEADERS);
                if (refused == null) {
                    response.headers().set(HttpHeaderNames.CONTENT_TYPE, HttpHeaderValues.APPLICATION_JSON);
                    // counted before it is written: a client reading the metrics right after its answer sees it
                    answer.served().run();
                } else {
                    response.headers().set(HttpHeaderNames.CONTENT_TYPE, Problem.MEDIA_TYPE);
                    refused.headers().forEach(response.headers()::set);
                }
                timer(ask.endpoint(), status, refused == null ? "none" : failure.getClass().getSimpleName())
                        .record(System.nanoTime() - startedNanos, TimeUnit.NANOSECONDS);
            } catch (RuntimeException e) {
                // nothing sensible can be answered: the connection is closed rather than left waiting
                LOG.error("Answering {} {} failed; closing the connection", ask.endpoint().method(),
                        ask.endpoint().route(), e);
                body.release();
                held.forEach(ReferenceCountUtil::release);
                reset();
                ChannelPromise close = closeRequested != null ? closeRequested : ctx.newPromise();
                closeRequested = null;
                ctx.close(close);
                return;
            }
            boolean keepAlive = ask.keepAlive() && closeRequested == null;
            response.headers()
                    .set(HttpHeaderNames.DATE, Dates.now())
                    .setInt(HttpHeaderNames.CONTENT_LENGTH, body.readableBytes());
            if (!keepAlive) {
                response.headers().set(HttpHeaderNames.CONNECTION, HttpHeaderValues.CLOSE);
            }
            held.forEach(ReferenceCountUtil::release);
            reset();
            var written = ctx.writeAndFlush(response);
            if (!keepAlive) {
                ChannelPromise close = closeRequested != null ? closeRequested : ctx.newPromise();
                closeRequested = null;
                written.addListener(f -> ctx.close(close));
                return;
            }
            resume(ctx);
        }

        /** An unexpected failure, answered as Micronaut answers one: a 500 naming an incident id that is also in the log. */
        private ApiException unexpected(Throwable cause) {
            String incident = UUID.randomUUID().toString();
            LOG.error("Unexpected error {} on {} {}", incident, ask.endpoint().method(), ask.endpoint().route(), cause);
            return new ApiException(ProblemType.INTERNAL, "An unexpected error occurred (incident " + incident + ")",
                    List.of(), Map.of());
        }

        private void write(Object value, ByteBuf out) {
            try (ByteBufOutputStream stream = new ByteBufOutputStream(out)) {
                json.writeValue(stream, value);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }

        /** Micronaut answers the held request (the contract's problem for whatever was wrong with it). */
        private void pass(ChannelHandlerContext ctx) {
            List<Object> messages = held;
            reset();
            if (closeRequested != null) {
                // the server is closing the connection (shutting down): nothing more is answered on it
                messages.forEach(ReferenceCountUtil::release);
                ChannelPromise close = closeRequested;
                closeRequested = null;
                ctx.close(close);
                return;
            }
            passed++;
            for (Object m : messages) {
                ctx.fireChannelRead(m);
            }
            ctx.fireChannelReadComplete();
            resume(ctx);
        }

        private void reset() {
            ask = null;
            held = null;
            serving = false;
        }

        /** Reads on: first what arrived while a request was served, then from the connection. */
        private void resume(ChannelHandlerContext ctx) {
            List<Object> arrived = waiting;
            waiting = null;
            if (arrived != null) {
                for (int i = 0; i < arrived.size(); i++) {
                    channelRead(ctx, arrived.get(i));
                    if (serving) {
                        // the next request is being served: what follows it waits again
                        waiting = new ArrayList<>(arrived.subList(i + 1, arrived.size()));
                        return;
                    }
                }
                ctx.fireChannelReadComplete();
            }
            if (readDeferred && !serving) {
                readDeferred = false;
                ctx.read();
            }
        }

        @Override
        public void channelInactive(ChannelHandlerContext ctx) {
            if (held != null) {
                held.forEach(ReferenceCountUtil::release);
            }
            if (waiting != null) {
                waiting.forEach(ReferenceCountUtil::release);
                waiting = null;
            }
            reset();
            if (closeRequested != null) {
                // closed meanwhile from the other side: the deferred close is done
                ctx.close(closeRequested);
                closeRequested = null;
            }
            ctx.fireChannelInactive();
        }
    }
}
