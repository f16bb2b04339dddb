package dev.herald.devices;

import dev.herald.api.ApiException;
import dev.herald.api.Problem;
import dev.herald.api.ConnectionHandlers;
import io.micronaut.context.BeanProvider;
import io.micronaut.context.annotation.Requires;
import io.micronaut.context.event.BeanCreatedEvent;
import io.micronaut.context.event.BeanCreatedEventListener;
import io.micronaut.http.server.netty.NettyServerCustomizer;
import io.netty.buffer.ByteBuf;
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
import io.netty.handler.codec.http.HttpMethod;
import io.netty.handler.codec.http.HttpRequest;
import io.netty.handler.codec.http.HttpResponse;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpStatusClass;
import io.netty.handler.codec.http.HttpUtil;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.handler.codec.http.LastHttpContent;
import io.netty.util.ReferenceCountUtil;
import jakarta.inject.Singleton;

import java.time.ZoneOffset;
import java.time.ZonedDateTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletionStage;

/**
 * Serves {@code PUT /v1/devices/{installationId}} on HTTP/1.1 connections straight from Netty, as
 * {@code live.StreamChannels} serves streams: the request is read here, checked and stored through
 * {@link DirectRegistrations}, and answered with the status, headers and body {@link DeviceController}
 * would give, without Micronaut's routing, filters and reactive body handling on the way, which cost
 * more event-loop time per registration than everything else together.
 *
 * <p>Only the common case is served here: an HTTP/1.1 PUT of an uncompressed JSON body up to
 * {@value #MAX_BODY} bytes, with a user token verified before, on a connection where Micronaut owes no
 * answer. Everything else, and whatever {@link DirectRegistrations} declines before doing anything (a bad
 * body, a user over their limit), goes on to Micronaut, which answers it as usual; a registration the
 * writer refuses is answered here with the same problem. While a registration is served here, nothing more is
 * read from its connection; requests pipelined behind it are read, in order, once it was answered.
 * {@code herald.devices.direct=false} leaves every registration to Micronaut.
 */
@Singleton
@Requires(property = "herald.devices.direct", notEquals = "false")
class RegistrationChannels implements BeanCreatedEventListener<NettyServerCustomizer.Registry> {

    static final String HANDLER = ConnectionHandlers.REGISTRATION;
    private static final String PREFIX = "/v1/devices/";
    static final int MAX_BODY = 16 * 1024;
    /**
     * Bodies up to this size get answers under Micronaut's 1 KiB compression threshold (the answer drops
     * the push token and adds at most ~250 bytes); larger ones from clients that take compression go to it.
     */
    static final int MAX_UNCOMPRESSED = 700;
    /** The answer's headers are ours and known to be valid: not checked again character by character. */
    private static final DefaultHttpHeadersFactory HEADERS = DefaultHttpHeadersFactory.headersFactory()
            .withValidation(false);

    private final BeanProvider<DirectRegistrations> provider;
    private volatile DirectRegistrations registrations;

    // the listener is created with the server; what it uses is looked up at the first registration
    RegistrationChannels(BeanProvider<DirectRegistrations> provider) {
        this.provider = provider;
    }

    private DirectRegistrations registrations() {
        DirectRegistrations known = registrations;
        if (known == null) {
            known = provider.get();
            registrations = known;
        }
        return known;
    }

    @Override
    public NettyServerCustomizer.Registry onCreated(BeanCreatedEvent<NettyServerCustomizer.Registry> event) {
        // behind the stream handler: a stream that takes its connection drops the handlers behind it
        event.getBean().register(ConnectionHandlers.installing(HANDLER, List.of(ConnectionHandlers.STREAM), Handler::new));
        return event.getBean();
    }

    /** A registration this handler may serve: the installation, the bearer token, and whether to keep the connection. */
    record Ask(String installationId, String token, boolean keepAlive) {
    }

    /** The registration in {@code request} if this handler may serve it, or null when Micronaut is to have it. */
    static Ask ask(HttpRequest request) {
        if (request.method() != HttpMethod.PUT || request.protocolVersion() != HttpVersion.HTTP_1_1
                || !request.decoderResult().isSuccess()) {
            return null;
        }
        String uri = request.uri();
        if (!uri.startsWith(PREFIX) || uri.indexOf('/', PREFIX.length()) >= 0 || uri.indexOf('?') >= 0) {
            return null;
        }
        HttpHeaders headers = request.headers();
        String contentType = headers.get(HttpHeaderNames.CONTENT_TYPE);
        long length = HttpUtil.getContentLength(request, -1L);
        if (contentType == null || !(contentType.equalsIgnoreCase("application/json")
                || contentType.regionMatches(true, 0, "application/json;", 0, 17))
                || length < 0 || length > MAX_BODY
                || headers.contains(HttpHeaderNames.EXPECT) || headers.contains(HttpHeaderNames.TRANSFER_ENCODING)
                // a compressed body is Micronaut's to decode, and so is an answer it might compress (1 KiB and up)
                || headers.contains(HttpHeaderNames.CONTENT_ENCODING)
                || length > MAX_UNCOMPRESSED && headers.contains(HttpHeaderNames.ACCEPT_ENCODING)) {
            return null;
        }
        String token = bearer(request);
        String id = uri.substring(PREFIX.length());
        return token == null || id.equals(".") || id.equals("..") ? null
                : new Ask(id, token, HttpUtil.isKeepAlive(request));
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
     * One connection's registration handler. Passes everything to Micronaut until a registration it may
     * serve arrives; holds that request and its body while it is read and stored, and reads nothing more
     * meanwhile (the next {@code read} is deferred until the answer is written).
     */
    private final class Handler extends ChannelDuplexHandler {
        /** Requests handed to Micronaut on this connection, and its final answers written (pipelining). */
        private long passed;
        private long answered;
        /** The registration being read or served here, and its messages (for Micronaut if declined). */
        private Ask ask;
        private List<Object> held;
        private int bodyBytes;
        private long startedNanos;
        /** Its body is complete: it is being stored; reads wait, and what was read meanwhile waits here. */
        private boolean serving;
        private boolean readDeferred;
        private List<Object> waiting;
        /** A close asked for while a registration was stored: done once it is answered. */
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
                    if (bodyBytes > MAX_BODY) {
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
                // a graceful shutdown closes idle connections: this one still owes a stored registration its answer
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
            CompletionStage<DeviceStore.Registered> stored;
            try {
                stored = registrations().register(ask.token(), ask.installationId(), body, ctx.executor());
            } catch (RuntimeException e) {
                stored = null;
            }
            if (stored == null) {
                pass(ctx);
                return;
            }
            List<Object> mine = held;
            stored.whenComplete((registered, failed) -> {
                if (ctx.executor().inEventLoop()) {
                    finish(ctx, mine, registered, failed);
                } else {
                    ctx.executor().execute(() -> finish(ctx, mine, registered, failed));
                }
            });
        }

        /**
         * Answers a stored registration, or the problem the writer refused it with (an unknown app, a full
         * queue, PostgreSQL away: it was already rate-limited and tried here, so not again through
         * Micronaut); a registration declined before anything was done goes on to Micronaut.
         */
        private void finish(ChannelHandlerContext ctx, List<Object> mine, DeviceStore.Registered registered,
                            Throwable failed) {
            if (held != mine) {
                return; // the connection closed meanwhile
            }
            Throwable cause = failed;
            while (cause instanceof java.util.concurrent.CompletionException && cause.getCause() != null) {
                cause = cause.getCause();
            }
            if (registered == null && !(cause instanceof ApiException)) {
                pass(ctx);
                return;
            }
            DirectRegistrations direct = registrations();
            ByteBuf json = ctx.alloc().buffer(512);
            try {
                direct.writeJson(registered != null ? registered.device() : ((ApiException) cause).toProblem(), json);
            } catch (RuntimeException e) {
                json.release();
                pass(ctx);
                return;
            }
            HttpResponse response;
            if (registered != null) {
                response = new DefaultFullHttpResponse(HttpVersion.HTTP_1_1,
                        registered.created() ? HttpResponseStatus.CREATED : HttpResponseStatus.OK, json,
                        HEADERS, HEADERS);
                response.headers().set(HttpHeaderNames.CONTENT_TYPE, HttpHeaderValues.APPLICATION_JSON);
                // counted before it is written: a client reading the metrics right after its answer sees it
                direct.served(registered, startedNanos);
            } else {
                ApiException refused = (ApiException) cause;
                response = new DefaultFullHttpResponse(HttpVersion.HTTP_1_1,
                        HttpResponseStatus.valueOf(refused.type().status().getCode()), json, HEADERS, HEADERS);
                response.headers().set(HttpHeaderNames.CONTENT_TYPE, Problem.MEDIA_TYPE);
                refused.headers().forEach(response.headers()::set);
            }
            boolean keepAlive = ask.keepAlive() && closeRequested == null;
            response.headers()
                    .set(HttpHeaderNames.DATE, Dates.now())
                    .setInt(HttpHeaderNames.CONTENT_LENGTH, json.readableBytes());
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

        /** Reads on: first what arrived while a registration was served, then from the connection. */
        private void resume(ChannelHandlerContext ctx) {
            List<Object> arrived = waiting;
            waiting = null;
            if (arrived != null) {
                for (int i = 0; i < arrived.size(); i++) {
                    channelRead(ctx, arrived.get(i));
                    if (serving) {
                        // the next registration is being stored: what follows it waits again
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
