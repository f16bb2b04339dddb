package dev.herald.bench;

import com.nimbusds.jose.JWSAlgorithm;
import com.nimbusds.jose.JWSHeader;
import com.nimbusds.jose.crypto.MACSigner;
import com.nimbusds.jwt.JWTClaimsSet;
import com.nimbusds.jwt.SignedJWT;
import io.netty.bootstrap.Bootstrap;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.SimpleChannelInboundHandler;
import io.netty.channel.nio.NioIoHandler;
import io.netty.channel.socket.SocketChannel;
import io.netty.channel.socket.nio.NioSocketChannel;
import io.netty.handler.codec.http.DefaultFullHttpRequest;
import io.netty.handler.codec.http.HttpClientCodec;
import io.netty.handler.codec.http.HttpContent;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpMethod;
import io.netty.handler.codec.http.HttpObject;
import io.netty.handler.codec.http.HttpResponse;
import io.netty.handler.codec.http.HttpVersion;
import org.HdrHistogram.Histogram;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Date;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLongArray;
import java.util.concurrent.locks.LockSupport;

/**
 * Live streams: how much service memory an idle stream costs, and how fast one notification to every
 * connected user reaches their streams. {@code bench.streams} users (default 10,000) each open one
 * {@code GET /v1/inbox/stream} (user JWTs signed with the service's secret); the service's RSS is read
 * before and after (before: once as many streams of other users were opened and closed, so that the
 * heap's one-time growth to that work is not counted per stream; {@code -Dbench.streamWarmup=false}
 * counts it); then one notification names them all and each connection's first
 * {@code notification} event is timed from the moment the request was sent.
 */
public final class LiveStreamBench {

    private static final String SECRET = "bench-jwt-secret-0123456789-0123456789-0123456789";

    private final Path jar = Paths.get(System.getProperty("herald.jar", "target/herald.jar")).toAbsolutePath();
    private final Path dataDir = Paths.get(System.getProperty("bench.dataDir", "target/bench-stream-data")).toAbsolutePath();
    private final Path logFile = Paths.get(System.getProperty("bench.log", "target/bench-stream-service.log")).toAbsolutePath();
    private final Path report = Paths.get(System.getProperty("bench.report", "target/bench-live-streams.md")).toAbsolutePath();
    private final int streams = Integer.getInteger("bench.streams", 10_000);
    private final int fanouts = Integer.getInteger("bench.fanouts", 10);
    private final int fanoutWarmup = Integer.getInteger("bench.fanoutWarmup", 20);

    public static void main(String[] args) throws Exception {
        System.exit(new LiveStreamBench().run());
    }

    private int run() throws Exception {
        List<String[]> rows = new ArrayList<>();
        List<String> verdicts = new ArrayList<>();
        AtomicLongArray arrived = new AtomicLongArray(streams);
        AtomicInteger opened = new AtomicInteger();
        // what the event of the round being measured carries
        java.util.concurrent.atomic.AtomicReference<io.netty.buffer.ByteBuf> marker =
                new java.util.concurrent.atomic.AtomicReference<>(Unpooled.copiedBuffer("\u0000", StandardCharsets.UTF_8));
        EventLoopGroup group = new MultiThreadIoEventLoopGroup(2, NioIoHandler.newFactory());
        try (BenchService service = BenchService.start(jar, dataDir, logFile, Map.of("HERALD_JWT_SECRET", SECRET))) {
            service.expect(service.post("/v1/apps", service.adminKey(), "{\"id\":\"streams\",\"name\":\"Streams\"}"), 201, "app");
            String key = BenchService.field(service.expect(service.post("/v1/apps/streams/keys", service.adminKey(),
                    "{\"name\":\"bench\",\"mode\":\"live\",\"scopes\":[\"send\"]}"), 201, "key"), "key");
            // warm the paths a stream and a notification take, then let the heap settle
            for (int i = 0; i < 200; i++) {
                service.post("/v1/notifications", key, "{\"to\":{\"users\":[\"warm-" + i + "\"]},\"title\":\"warm\"}");
            }
            service.get("/metrics");
            LockSupport.parkNanos(TimeUnit.SECONDS.toNanos(5));
            long rssBefore = service.rssKb();
            long heapBefore = service.liveHeapKb();

            MACSigner signer = new MACSigner(SECRET.getBytes(StandardCharsets.UTF_8));
            // one token per user, the same for the warm-up streams and the measured ones
            List<String> tokens = new ArrayList<>(streams);
            for (int i = 0; i < streams; i++) {
                SignedJWT jwt = new SignedJWT(new JWSHeader(JWSAlgorithm.HS256), new JWTClaimsSet.Builder()
                        .issuer("herald").subject("s-" + i).audience("herald").issueTime(new Date())
                        .expirationTime(Date.from(Instant.now().plusSeconds(3600))).build());
                jwt.sign(signer);
                tokens.add(jwt.serialize());
            }
            Bootstrap bootstrap = new Bootstrap().group(group).channel(NioSocketChannel.class);
            // first the same users' streams are opened and closed once: the service's heap grows to what
            // that work needs (a one-time cost, like compiling its code), and the RSS read before the
            // streams that are measured includes it (no full GC from here to the RSS read after the
            // streams: it would shrink the heap in between). The tokens it verified stay cached (5 min):
            // the live heap read after the streams counts them once, as a new stream's token is.
            long rssCold = rssBefore;
            if (Boolean.parseBoolean(System.getProperty("bench.streamWarmup", "true"))) {
                AtomicInteger warm = new AtomicInteger();
                List<Channel> warming = open(bootstrap, tokens, service.port(), warm, null, null);
                awaitOpen(warm, "warm-up streams");
                warming.forEach(Channel::close);
                warming.forEach(ch -> ch.closeFuture().syncUninterruptibly());
                LockSupport.parkNanos(TimeUnit.SECONDS.toNanos(10));
                rssBefore = service.rssKb();
            }
            long t0 = System.nanoTime();
            List<Channel> channels = open(bootstrap, tokens, service.port(), opened, arrived, marker);
            awaitOpen(opened, "streams");
            BenchService.log("streams: %,d of %,d open after %.1f s", opened.get(), streams, (System.nanoTime() - t0) / 1e9);
            LockSupport.parkNanos(TimeUnit.SECONDS.toNanos(10));
            long rssAfter = service.rssKb();
            long heapAfter = service.liveHeapKb();
            if (Boolean.getBoolean("bench.histogram")) {
                service.classHistogram(30).forEach(l -> BenchService.log("heap: %s", l));
            }
            double kbPerStream = (rssAfter - rssBefore) / (double) opened.get();
            double heapKbPerStream = (heapAfter - heapBefore) / (double) opened.get();
            // the RSS delta depends on how far G1 grew the heap while the streams opened; the live heap does
            // not, and a heap needs room beside its live data: a stream counts as the larger of its RSS
            // delta and twice its live heap
            double perGiB = 1024.0 * 1024.0 / Math.max(Math.max(kbPerStream, 2 * heapKbPerStream), 0.001);
            rows.add(BenchService.row("idle streams open", "%,d (one per user)", opened.get()));
            rows.add(BenchService.row("service RSS at first / after as many other streams came and went / with the streams",
                    "%,d MiB / %,d MiB / %,d MiB", rssCold / 1024, rssBefore / 1024, rssAfter / 1024));
            rows.add(BenchService.row("service RSS per idle stream", "%.1f KB", kbPerStream));
            rows.add(BenchService.row("live heap per idle stream (after a full GC)", "%.1f KB (%,d KB before, %,d KB after)",
                    heapKbPerStream, heapBefore, heapAfter));
            rows.add(BenchService.row("streams per GiB (a stream: the larger of its RSS and twice its live heap)", "%,.0f", perGiB));
            verdicts.add("- idle streams >= 100,000 per GiB of service RSS: " + (perGiB >= 100_000 ? "met" : "NOT met"));

            StringBuilder users = new StringBuilder();
            for (int i = 0; i < streams; i++) {
                users.append(i == 0 ? "" : ",").append("\"s-").append(i).append('"');
            }
            // the first round is this service's first fan-out to streams (its code not compiled yet); after
            // fanoutWarmup rounds the JIT has compiled what a service that has run a while would have
            List<Double> measured = new ArrayList<>();
            List<Double> warmup = new ArrayList<>();
            boolean allReached = true;
            for (int round = 1; round <= fanoutWarmup + fanouts; round++) {
                for (int i = 0; i < streams; i++) {
                    arrived.set(i, 0);
                }
                String title = "Round " + round + " to everyone connected";
                // found in the bytes as they arrive (not decoded to a String: the load generator shares the CPU)
                marker.set(Unpooled.copiedBuffer(title, StandardCharsets.UTF_8));
                long sent = System.nanoTime();
                service.expect(service.post("/v1/notifications", key,
                        "{\"to\":{\"users\":[" + users + "]},\"title\":\"" + title + "\"}"), 202, "fan-out");
                long accepted = System.nanoTime();
                long deadline = System.nanoTime() + TimeUnit.MINUTES.toNanos(2);
                Histogram latency = new Histogram(TimeUnit.MINUTES.toMicros(2), 3);
                int got;
                do {
                    LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(20));
                    got = 0;
                    for (int i = 0; i < streams; i++) {
                        if (arrived.get(i) != 0) {
                            got++;
                        }
                    }
                } while (got < opened.get() && System.nanoTime() < deadline);
                long last = 0;
                for (int i = 0; i < streams; i++) {
                    long at = arrived.get(i);
                    if (at != 0) {
                        latency.recordValue((at - sent) / 1_000);
                        last = Math.max(last, at);
                    }
                }
                double p99 = latency.getValueAtPercentile(99) / 1000.0;
                allReached &= got == opened.get();
                (round > fanoutWarmup ? measured : warmup).add(p99);
                BenchService.log("fan-out round %d: %,d of %,d streams, 202 after %.0f ms, p50 %.0f / p99 %.0f / last %.0f ms",
                        round, got, opened.get(), (accepted - sent) / 1e6, latency.getValueAtPercentile(50) / 1000.0, p99,
                        (last - sent) / 1e6);
                if (round == 1 || round > fanoutWarmup) {
                    rows.add(BenchService.row("one notification to every connected user, round " + round
                                    + (round == 1 ? " (cold)" : ""), "%,d of %,d streams got it; p50 / p99 / last %.0f / %.0f / %.0f ms",
                            got, opened.get(), latency.getValueAtPercentile(50) / 1000.0, p99, (last - sent) / 1e6));
                }
                // let the service store the rest of the round (its later chunks) before the next one
                service.awaitNoRoutingJobs();
            }
            List<Double> sorted = measured.stream().sorted().toList();
            double worst = sorted.isEmpty() ? Double.NaN : sorted.get(sorted.size() - 1);
            rows.add(BenchService.row("p99 of rounds 2 to " + fanoutWarmup + " (warming up)", "%s ms",
                    warmup.stream().skip(1).map(v -> String.format("%.0f", v)).toList()));
            rows.add(BenchService.row("p99 of the " + measured.size() + " measured rounds: median / worst", "%.0f / %.0f ms",
                    sorted.isEmpty() ? Double.NaN : sorted.get(sorted.size() / 2), worst));
            verdicts.add("- 10,000 connected users: every stream reached, p99 < 250 ms in every measured round (worst "
                    + String.format("%.0f ms", worst) + "): " + (allReached && worst < 250 ? "met" : "NOT met"));
            channels.forEach(Channel::close);
        } finally {
            group.shutdownGracefully(0, 1, TimeUnit.SECONDS);
        }
        String table = BenchService.table(rows);
        System.out.println();
        System.out.println(table);
        verdicts.forEach(System.out::println);
        Files.writeString(report, "# Live stream benchmark\n\nRun at " + Instant.now() + " on "
                + Runtime.getRuntime().availableProcessors() + " cores. Method: `dev.herald.bench.LiveStreamBench`.\n\n"
                + table + "\n" + String.join("\n", verdicts) + "\n");
        return verdicts.stream().anyMatch(v -> v.contains("NOT met")) ? 1 : 0;
    }

    /**
     * Opens one stream per token, counting each 200 in {@code opened} and, when {@code arrived} is given,
     * timing each connection's first chunk holding {@code marker}.
     */
    private List<Channel> open(Bootstrap bootstrap, List<String> tokens, int port, AtomicInteger opened,
                               AtomicLongArray arrived,
                               java.util.concurrent.atomic.AtomicReference<io.netty.buffer.ByteBuf> marker) throws Exception {
        List<Channel> channels = new ArrayList<>(streams);
        for (int i = 0; i < streams; i++) {
            int index = i;
            Channel ch = bootstrap.clone().handler(new ChannelInitializer<SocketChannel>() {
                @Override
                protected void initChannel(SocketChannel c) {
                    c.pipeline().addLast(new HttpClientCodec(), new SimpleChannelInboundHandler<HttpObject>() {
                        @Override
                        protected void channelRead0(ChannelHandlerContext ctx, HttpObject msg) {
                            if (msg instanceof HttpResponse r && r.status().code() == 200) {
                                opened.incrementAndGet();
                            }
                            if (arrived != null && msg instanceof HttpContent content && arrived.get(index) == 0
                                    && io.netty.buffer.ByteBufUtil.indexOf(marker.get(), content.content()) >= 0) {
                                arrived.set(index, System.nanoTime());
                            }
                        }
                    });
                }
            }).connect("127.0.0.1", port).syncUninterruptibly().channel();
            DefaultFullHttpRequest request = new DefaultFullHttpRequest(HttpVersion.HTTP_1_1, HttpMethod.GET,
                    "/v1/inbox/stream", Unpooled.EMPTY_BUFFER);
            request.headers().set(HttpHeaderNames.HOST, "127.0.0.1").set(HttpHeaderNames.ACCEPT, "text/event-stream")
                    .set(HttpHeaderNames.AUTHORIZATION, "Bearer " + tokens.get(i));
            ch.writeAndFlush(request);
            channels.add(ch);
        }
        return channels;
    }

    private void awaitOpen(AtomicInteger opened, String what) {
        long deadline = System.nanoTime() + TimeUnit.MINUTES.toNanos(2);
        while (opened.get() < streams && System.nanoTime() < deadline) {
            LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(50));
        }
        if (opened.get() < streams) {
            BenchService.log("%s: only %,d of %,d open", what, opened.get(), streams);
        }
    }
}
