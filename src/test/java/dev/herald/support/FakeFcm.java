package dev.herald.support;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.netty.bootstrap.ServerBootstrap;
import io.netty.buffer.ByteBufUtil;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.SimpleChannelInboundHandler;
import io.netty.channel.group.ChannelGroup;
import io.netty.channel.group.DefaultChannelGroup;
import io.netty.channel.nio.NioIoHandler;
import io.netty.channel.socket.SocketChannel;
import io.netty.channel.socket.nio.NioServerSocketChannel;
import io.netty.handler.codec.http.DefaultFullHttpResponse;
import io.netty.handler.codec.http.FullHttpRequest;
import io.netty.handler.codec.http.FullHttpResponse;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpHeaderValues;
import io.netty.handler.codec.http.HttpObjectAggregator;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpServerCodec;
import io.netty.handler.codec.http.HttpServerUpgradeHandler;
import io.netty.handler.codec.http.HttpUtil;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.handler.codec.http2.CleartextHttp2ServerUpgradeHandler;
import io.netty.handler.codec.http2.DefaultHttp2DataFrame;
import io.netty.handler.codec.http2.DefaultHttp2Headers;
import io.netty.handler.codec.http2.DefaultHttp2HeadersFrame;
import io.netty.handler.codec.http2.DefaultHttp2WindowUpdateFrame;
import io.netty.handler.codec.http2.Http2DataFrame;
import io.netty.handler.codec.http2.Http2FrameCodecBuilder;
import io.netty.handler.codec.http2.Http2FrameStream;
import io.netty.handler.codec.http2.Http2Headers;
import io.netty.handler.codec.http2.Http2HeadersFrame;
import io.netty.handler.codec.http2.Http2Settings;
import io.netty.util.ReferenceCountUtil;
import io.netty.util.concurrent.GlobalEventExecutor;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Queue;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Function;
import java.util.function.Supplier;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A loopback FCM HTTP v1 endpoint over plain HTTP/1.1 or HTTP/2 with prior knowledge (h2c), on Netty so it keeps
 * up with a load test: {@code POST /v1/projects/{projectId}/messages:send}
 * and a Google OAuth token endpoint {@code POST /token} (JWT-bearer grant).
 *
 * <p>Every send must carry {@code Authorization: Bearer <a token this endpoint issued>}, else it is answered
 * 401 {@code UNAUTHENTICATED}. Sends are answered 200 {@code {"name": "projects/<p>/messages/<n>"}} unless a test
 * scripted another {@link Answer} for the device token; errors have FCM's real body shape. Every send and token
 * request is recorded, unless {@link #recording(boolean) recording} is off for a load test. {@link #stop()} and {@link #start()} close and reopen the same port, to simulate an outage;
 * issued access tokens stay valid across them. Thread-safe.
 *
 * @see <a href="https://firebase.google.com/docs/reference/fcm/rest/v1/ErrorCode">FCM v1 error codes</a>
 */
public final class FakeFcm implements AutoCloseable {

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Pattern SEND = Pattern.compile("/v1/projects/([^/]+)/messages:send");
    private static final int MAX_STREAMS = 1000;
    private static final String JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer";

    /** One send as the endpoint received it: over {@code HTTP/2} or {@code HTTP/1.1}; header names in lower case. */
    public record Send(String projectId, String protocol, Map<String, List<String>> headers, JsonNode body) {

        public String header(String name) {
            List<String> values = headers.get(name.toLowerCase());
            return values == null || values.isEmpty() ? null : values.get(0);
        }

        /** The {@code message} object of the body. */
        public JsonNode message() {
            return body.path("message");
        }
    }

    /** One token request: the JWT assertion's claims (issuer, audience, scope). */
    public record TokenRequest(JsonNode claims) {
    }

    /**
     * How the endpoint answers a send: an HTTP status, FCM's {@code errorCode} (null on success or for a bare
     * platform error), the canonical status name and an optional {@code Retry-After} header value.
     */
    public record Answer(int status, String errorCode, String statusName, String retryAfter) {

        public static Answer ok() {
            return new Answer(200, null, null, null);
        }

        public static Answer unregistered() {
            return new Answer(404, "UNREGISTERED", "NOT_FOUND", null);
        }

        public static Answer senderIdMismatch() {
            return new Answer(403, "SENDER_ID_MISMATCH", "PERMISSION_DENIED", null);
        }

        public static Answer invalidArgument() {
            return new Answer(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", null);
        }

        public static Answer thirdPartyAuthError() {
            return new Answer(401, "THIRD_PARTY_AUTH_ERROR", "UNAUTHENTICATED", null);
        }

        public static Answer unavailable(String retryAfter) {
            return new Answer(503, "UNAVAILABLE", "UNAVAILABLE", retryAfter);
        }

        public static Answer quotaExceeded(String retryAfter) {
            return new Answer(429, "QUOTA_EXCEEDED", "RESOURCE_EXHAUSTED", retryAfter);
        }

        public static Answer internal() {
            return new Answer(500, "INTERNAL", "INTERNAL", null);
        }
    }

    private final Map<String, Answer> answers = new ConcurrentHashMap<>();
    private final Set<String> issued = ConcurrentHashMap.newKeySet();
    private final Queue<Send> sends = new ConcurrentLinkedQueue<>();
    private final Queue<TokenRequest> tokenRequests = new ConcurrentLinkedQueue<>();
    private final AtomicLong sent = new AtomicLong();
    private final AtomicLong delivered = new AtomicLong();
    private volatile Answer everyone;
    private final AtomicLong repeats = new AtomicLong();
    private final java.util.Set<String> tokensSeen = java.util.concurrent.ConcurrentHashMap.newKeySet();
    private final AtomicLong ids = new AtomicLong();
    private volatile boolean recording = true;
    private volatile boolean refuseTokens;
    private final EventLoopGroup loop = new MultiThreadIoEventLoopGroup(1, NioIoHandler.newFactory());
    private final ChannelGroup connections = new DefaultChannelGroup(GlobalEventExecutor.INSTANCE);
    private volatile int port;
    private Channel server;

    /** Starts on a free loopback port. */
    public FakeFcm() {
        start();
    }

    /** Starts (again) on this endpoint's port; a no-op when running. */
    public synchronized void start() {
        if (server != null) {
            return;
        }
        ServerBootstrap bootstrap = new ServerBootstrap()
                .group(loop)
                .channel(NioServerSocketChannel.class)
                .option(ChannelOption.SO_REUSEADDR, true)
                .option(ChannelOption.SO_BACKLOG, 1024)
                .childOption(ChannelOption.TCP_NODELAY, true)
                .childHandler(new ChannelInitializer<SocketChannel>() {
                    @Override
                    protected void initChannel(SocketChannel channel) {
                        connections.add(channel);
                        HttpServerCodec http1 = new HttpServerCodec();
                        channel.pipeline().addLast(
                                new CleartextHttp2ServerUpgradeHandler(http1, new HttpServerUpgradeHandler(http1, protocol -> null), http2()),
                                new HttpObjectAggregator(1 << 20), new Handler());
                    }
                });
        try {
            server = bootstrap.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), port)).sync().channel();
        } catch (Exception e) {
            throw new IllegalStateException("cannot listen on port " + port, e);
        }
        port = ((InetSocketAddress) server.localAddress()).getPort();
    }

    /** HTTP/2 with prior knowledge (h2c): each stream is one request, handled frame by frame (cheap under load). */
    private ChannelInitializer<Channel> http2() {
        return new ChannelInitializer<>() {
            @Override
            protected void initChannel(Channel channel) {
                channel.pipeline().addLast(
                        Http2FrameCodecBuilder.forServer()
                                .initialSettings(Http2Settings.defaultSettings().maxConcurrentStreams(MAX_STREAMS))
                                .build(),
                        new Http2Handler());
            }
        };
    }

    /** Closes the port and every open connection; {@link #start()} reopens the same port. */
    public synchronized void stop() {
        if (server == null) {
            return;
        }
        server.close().syncUninterruptibly();
        connections.close().syncUninterruptibly();
        server = null;
    }

    @Override
    public void close() {
        stop();
        loop.shutdownGracefully(0, 1, TimeUnit.SECONDS).syncUninterruptibly();
    }

    /** The base URL standing for {@code https://fcm.googleapis.com}. */
    public String baseUrl() {
        return "http://127.0.0.1:" + port;
    }

    /** The OAuth token endpoint, for a service account's {@code token_uri}. */
    public String tokenUri() {
        return baseUrl() + "/token";
    }

    /** Answers sends to this device token with {@code answer} from now on. */
    public void answer(String deviceToken, Answer answer) {
        answers.put(deviceToken, answer);
    }

    /** Answers every send with {@code answer} from now on (an outage, a quota), until called with null. */
    public void answerEveryone(Answer answer) {
        everyone = answer;
    }

    /** How many sends were answered 200, ever: the messages FCM took. */
    public long delivered() {
        return delivered.get();
    }

    /** Whether the token endpoint refuses every assertion, as Google does for a deleted or revoked key (400 invalid_grant). */
    public void refuseTokens(boolean refuse) {
        refuseTokens = refuse;
    }

    /** Forgets every access token issued so far, so sends carrying one are answered 401 until a new one is fetched. */
    public void revokeTokens() {
        issued.clear();
    }

    /** Whether to keep each send and token request (default); off for load, when only {@link #sent()} counts. */
    public void recording(boolean on) {
        recording = on;
    }

    /** The sends received so far (with a valid access token), oldest first. */
    public List<Send> sends() {
        return new ArrayList<>(sends);
    }

    public List<TokenRequest> tokenRequests() {
        return new ArrayList<>(tokenRequests);
    }

    /** How many sends with a valid access token were answered. */
    public long sent() {
        return sent.get();
    }

    public void clear() {
        sends.clear();
        tokenRequests.clear();
    }

    /** How many sends went to a device token that had already received one (since the last reset). */
    public long repeats() {
        return repeats.get();
    }

    /** Starts {@link #sent()} and {@link #repeats()} from zero. */
    public void resetCounts() {
        sent.set(0);
        repeats.set(0);
        tokensSeen.clear();
    }

    /** One request as either protocol delivered it; header names in lower case. */
    private record Request(String protocol, String method, String path, Function<String, String> header,
                           Supplier<Map<String, List<String>>> headers, byte[] body) {
    }

    private Reply answer(Request request) throws IOException {
        Matcher send = SEND.matcher(request.path());
        if (!"POST".equals(request.method())) {
            return new Reply(405, Map.of(), "{}");
        } else if (request.path().equals("/token")) {
            return token(new String(request.body(), StandardCharsets.UTF_8));
        } else if (send.matches()) {
            return send(request, send.group(1));
        }
        return new Reply(404, Map.of(), "{}");
    }

    /** HTTP/1.1: one request at a time on a connection, kept alive. */
    private final class Handler extends SimpleChannelInboundHandler<FullHttpRequest> {
        @Override
        protected void channelRead0(ChannelHandlerContext context, FullHttpRequest request) throws IOException {
            Reply reply = answer(new Request("HTTP/1.1", request.method().name(), URI.create(request.uri()).getPath(),
                    request.headers()::get, () -> {
                        Map<String, List<String>> all = new TreeMap<>();
                        request.headers().names().forEach(name -> all.put(name.toLowerCase(), request.headers().getAll(name)));
                        return all;
                    }, ByteBufUtil.getBytes(request.content())));
            FullHttpResponse response = new DefaultFullHttpResponse(HttpVersion.HTTP_1_1,
                    HttpResponseStatus.valueOf(reply.status()), Unpooled.wrappedBuffer(reply.body().getBytes(StandardCharsets.UTF_8)));
            response.headers().set(HttpHeaderNames.CONTENT_TYPE, "application/json; charset=UTF-8");
            reply.headers().forEach(response.headers()::set);
            HttpUtil.setContentLength(response, response.content().readableBytes());
            if (HttpUtil.isKeepAlive(request)) {
                response.headers().set(HttpHeaderNames.CONNECTION, HttpHeaderValues.KEEP_ALIVE);
                context.writeAndFlush(response);
            } else {
                context.writeAndFlush(response).addListener(ChannelFutureListener.CLOSE);
            }
        }

        @Override
        public void exceptionCaught(ChannelHandlerContext context, Throwable cause) {
            context.close();
        }
    }

    /** HTTP/2: a stream's HEADERS and DATA frames gathered, answered when the stream ends. Runs on the one loop thread. */
    private final class Http2Handler extends ChannelInboundHandlerAdapter {
        private final Map<Integer, Http2Headers> headers = new HashMap<>();
        private final Map<Integer, ByteArrayOutputStream> bodies = new HashMap<>();

        @Override
        public void channelRead(ChannelHandlerContext context, Object message) throws Exception {
            if (message instanceof Http2HeadersFrame frame) {
                headers.put(frame.stream().id(), frame.headers());
                if (frame.isEndStream()) {
                    respond(context, frame.stream());
                }
            } else if (message instanceof Http2DataFrame frame) {
                try {
                    frame.content().readBytes(bodies.computeIfAbsent(frame.stream().id(), id -> new ByteArrayOutputStream(512)),
                            frame.content().readableBytes());
                    context.write(new DefaultHttp2WindowUpdateFrame(frame.initialFlowControlledBytes()).stream(frame.stream()));
                    if (frame.isEndStream()) {
                        respond(context, frame.stream());
                    }
                } finally {
                    frame.release();
                }
            } else {
                ReferenceCountUtil.release(message);
            }
        }

        @Override
        public void channelReadComplete(ChannelHandlerContext context) {
            context.flush();
        }

        @Override
        public void exceptionCaught(ChannelHandlerContext context, Throwable cause) {
            context.close();
        }

        private void respond(ChannelHandlerContext context, Http2FrameStream stream) throws IOException {
            Http2Headers in = headers.remove(stream.id());
            ByteArrayOutputStream body = bodies.remove(stream.id());
            Reply reply = answer(new Request("HTTP/2", String.valueOf(in.method()),
                    URI.create(String.valueOf(in.path())).getPath(),
                    name -> {
                        CharSequence value = in.get(name.equals("host") ? ":authority" : name);
                        return value == null ? null : value.toString();
                    }, () -> {
                        Map<String, List<String>> all = new TreeMap<>();
                        in.forEach(header -> {
                            String name = header.getKey().toString().toLowerCase();
                            if (name.equals(":authority") || !name.startsWith(":")) {
                                all.computeIfAbsent(name.equals(":authority") ? "host" : name, n -> new ArrayList<>())
                                        .add(header.getValue().toString());
                            }
                        });
                        return all;
                    }, body == null ? new byte[0] : body.toByteArray()));
            Http2Headers out = new DefaultHttp2Headers().status(String.valueOf(reply.status()))
                    .set("content-type", "application/json; charset=UTF-8");
            reply.headers().forEach((name, value) -> out.set(name.toLowerCase(), value));
            context.write(new DefaultHttp2HeadersFrame(out).stream(stream));
            context.write(new DefaultHttp2DataFrame(
                    Unpooled.wrappedBuffer(reply.body().getBytes(StandardCharsets.UTF_8)), true).stream(stream));
        }
    }

    private record Reply(int status, Map<String, String> headers, String body) {
    }

    private Reply token(String form) throws IOException {
        Map<String, String> params = new TreeMap<>();
        for (String pair : form.split("&")) {
            int eq = pair.indexOf('=');
            if (eq > 0) {
                params.put(URLDecoder.decode(pair.substring(0, eq), StandardCharsets.UTF_8),
                        URLDecoder.decode(pair.substring(eq + 1), StandardCharsets.UTF_8));
            }
        }
        String[] jwt = params.getOrDefault("assertion", "").split("\\.");
        if (refuseTokens || !JWT_BEARER.equals(params.get("grant_type")) || jwt.length != 3) {
            return new Reply(400, Map.of(), "{\"error\":\"invalid_grant\",\"error_description\":\"Invalid JWT Signature.\"}");
        }
        if (recording) {
            tokenRequests.add(new TokenRequest(JSON.readTree(Base64.getUrlDecoder().decode(jwt[1]))));
        }
        String accessToken = "ya29.fake-" + ids.incrementAndGet();
        issued.add(accessToken);
        return new Reply(200, Map.of(),
                "{\"access_token\":\"" + accessToken + "\",\"expires_in\":3600,\"token_type\":\"Bearer\"}");
    }

    private Reply send(Request request, String projectId) throws IOException {
        byte[] raw = request.body();
        String authorization = request.header().apply("authorization");
        if (authorization == null || !authorization.startsWith("Bearer ")
                || !issued.contains(authorization.substring("Bearer ".length()))) {
            return new Reply(401, Map.of(), error(401, "UNAUTHENTICATED", null,
                    "Request had invalid authentication credentials."));
        }
        String deviceToken;
        if (recording) {
            JsonNode body = JSON.readTree(raw);
            sends.add(new Send(projectId, request.protocol(), request.headers().get(), body));
            deviceToken = body.path("message").path("token").asText();
        } else {
            deviceToken = deviceToken(raw); // under load: no tree
        }
        sent.incrementAndGet();
        if (!tokensSeen.add(deviceToken)) {
            repeats.incrementAndGet();
        }
        Answer scripted = everyone;
        Answer answer = scripted != null ? scripted : answers.getOrDefault(deviceToken, Answer.ok());
        if (answer.status() == 200) {
            delivered.incrementAndGet();
            return new Reply(200, Map.of(), "{\"name\":\"projects/" + projectId + "/messages/" + ids.incrementAndGet() + "\"}");
        }
        return new Reply(answer.status(), answer.retryAfter() == null ? Map.of() : Map.of("Retry-After", answer.retryAfter()),
                error(answer.status(), answer.statusName(), answer.errorCode(), "scripted " + answer.errorCode()));
    }

    /** {@code message.token}, read without building the tree. */
    private static String deviceToken(byte[] raw) throws IOException {
        try (JsonParser parser = JSON.getFactory().createParser(raw)) {
            int depth = 0;
            for (JsonToken token = parser.nextToken(); token != null; token = parser.nextToken()) {
                if (token == JsonToken.START_OBJECT || token == JsonToken.START_ARRAY) {
                    depth++;
                } else if (token == JsonToken.END_OBJECT || token == JsonToken.END_ARRAY) {
                    depth--;
                } else if (token == JsonToken.FIELD_NAME && depth == 2 && "token".equals(parser.currentName())
                        && "message".equals(parser.getParsingContext().getParent().getCurrentName())) {
                    return parser.nextTextValue();
                }
            }
        }
        return "";
    }

    /** FCM v1's error body: {@code {"error":{"code","message","status","details":[{"@type": FcmError, errorCode}]}}}. */
    private static String error(int code, String status, String errorCode, String message) {
        String details = errorCode == null ? ""
                : ",\"details\":[{\"@type\":\"type.googleapis.com/google.firebase.fcm.v1.FcmError\",\"errorCode\":\""
                        + errorCode + "\"}]";
        return "{\"error\":{\"code\":" + code + ",\"message\":\"" + message + "\",\"status\":\"" + status + "\""
                + details + "}}";
    }
}
