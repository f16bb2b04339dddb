package dev.herald.bench;

import io.netty.bootstrap.Bootstrap;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.SimpleChannelInboundHandler;
import io.netty.channel.nio.NioIoHandler;
import io.netty.channel.socket.SocketChannel;
import io.netty.channel.socket.nio.NioSocketChannel;
import io.netty.handler.codec.http.DefaultFullHttpRequest;
import io.netty.handler.codec.http.FullHttpRequest;
import io.netty.handler.codec.http.FullHttpResponse;
import io.netty.handler.codec.http.HttpClientCodec;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpMethod;
import io.netty.handler.codec.http.HttpObjectAggregator;
import io.netty.handler.codec.http.HttpVersion;
import org.HdrHistogram.Histogram;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.LongFunction;

/**
 * A closed-loop HTTP/1.1 load generator on one Netty thread: {@code connections} keep-alive
 * connections, each with one request outstanding, so the number in flight is the number of
 * connections. Cheap on CPU, so the service under test gets the machine.
 */
final class ClosedLoop implements AutoCloseable {

    /** What one run issued and saw. */
    static final class Result {
        final Histogram latencyMicros = new Histogram(TimeUnit.MINUTES.toMicros(2), 3);
        final List<String> firstErrors = new ArrayList<>();
        long completed;
        long ok;
        long errors;
        long startNanos;
        long endNanos;

        double seconds() {
            return (endNanos - startNanos) / 1e9;
        }
    }

    private final EventLoopGroup group = new MultiThreadIoEventLoopGroup(1, NioIoHandler.newFactory());
    private final List<Conn> conns = new ArrayList<>();
    private final String host;

    ClosedLoop(int port, int connections) {
        this.host = "127.0.0.1:" + port;
        Bootstrap bootstrap = new Bootstrap().group(group).channel(NioSocketChannel.class)
                .option(ChannelOption.TCP_NODELAY, true);
        for (int i = 0; i < connections; i++) {
            Conn c = new Conn();
            c.channel = bootstrap.clone().handler(new ChannelInitializer<SocketChannel>() {
                @Override
                protected void initChannel(SocketChannel ch) {
                    ch.pipeline().addLast(new HttpClientCodec(), new HttpObjectAggregator(1 << 20), c);
                }
            }).connect("127.0.0.1", port).syncUninterruptibly().channel();
            conns.add(c);
        }
    }

    /**
     * Posts {@code body(n)} to {@code path} with {@code bearer} until {@code maxRequests} were issued or
     * {@code seconds} passed; a response with {@code okStatus} counts as ok.
     */
    Result run(String path, String bearer, LongFunction<String> body, int okStatus, long maxRequests, double seconds)
            throws Exception {
        return run(path, bearer, body, okStatus, maxRequests, seconds, 0);
    }

    /**
     * As {@link #run(String, String, LongFunction, int, long, double)}, but at most {@code perSecond}
     * requests a second (0: as fast as the service answers): request n is not sent before
     * {@code start + n / perSecond}, so the load is paced, not closed-loop, while connections are free.
     */
    Result run(String path, String bearer, LongFunction<String> body, int okStatus, long maxRequests, double seconds,
               double perSecond) throws Exception {
        Result result = new Result();
        CompletableFuture<Void> done = new CompletableFuture<>();
        long deadline = System.nanoTime() + (long) (seconds * 1e9);
        long[] issued = {0};
        int[] active = {conns.size()};
        group.next().submit(() -> {
            result.startNanos = System.nanoTime();
            for (Conn c : conns) {
                c.next = () -> {
                    if (issued[0] >= maxRequests || System.nanoTime() >= deadline) {
                        if (--active[0] == 0) {
                            result.endNanos = System.nanoTime();
                            done.complete(null);
                        }
                        return;
                    }
                    if (perSecond > 0) {
                        long slot = result.startNanos + (long) (issued[0] * 1e9 / perSecond);
                        long wait = slot - System.nanoTime();
                        if (wait > 0) {
                            c.channel.eventLoop().schedule(c.next, wait, TimeUnit.NANOSECONDS);
                            return;
                        }
                    }
                    byte[] bytes = body.apply(issued[0]++).getBytes(StandardCharsets.UTF_8);
                    FullHttpRequest request = new DefaultFullHttpRequest(HttpVersion.HTTP_1_1, HttpMethod.POST, path,
                            Unpooled.wrappedBuffer(bytes));
                    request.headers().set(HttpHeaderNames.HOST, host)
                            .set(HttpHeaderNames.AUTHORIZATION, "Bearer " + bearer)
                            .set(HttpHeaderNames.CONTENT_TYPE, "application/json")
                            .setInt(HttpHeaderNames.CONTENT_LENGTH, bytes.length);
                    c.sentAt = System.nanoTime();
                    c.channel.writeAndFlush(request, c.channel.voidPromise());
                };
                c.onResponse = (status, text) -> {
                    long micros = (System.nanoTime() - c.sentAt) / 1_000;
                    result.latencyMicros.recordValue(Math.min(micros, result.latencyMicros.getHighestTrackableValue()));
                    result.completed++;
                    if (status == okStatus) {
                        result.ok++;
                    } else {
                        result.errors++;
                        if (result.firstErrors.size() < 5) {
                            result.firstErrors.add(status + " " + text);
                        }
                    }
                };
                c.next.run();
            }
        }).sync();
        done.get((long) seconds + 600, TimeUnit.SECONDS);
        return result;
    }

    @Override
    public void close() {
        for (Conn c : conns) {
            c.channel.close().syncUninterruptibly();
        }
        group.shutdownGracefully(0, 1, TimeUnit.SECONDS).syncUninterruptibly();
    }

    private static final class Conn extends SimpleChannelInboundHandler<FullHttpResponse> {
        Channel channel;
        Runnable next;
        java.util.function.BiConsumer<Integer, String> onResponse;
        long sentAt;

        @Override
        protected void channelRead0(ChannelHandlerContext ctx, FullHttpResponse response) {
            onResponse.accept(response.status().code(), response.content().toString(StandardCharsets.UTF_8));
            next.run();
        }
    }
}
