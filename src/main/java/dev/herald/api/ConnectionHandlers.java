package dev.herald.api;

import io.micronaut.http.netty.channel.ChannelPipelineCustomizer;
import io.micronaut.http.server.netty.NettyServerCustomizer;
import io.netty.channel.Channel;
import io.netty.channel.ChannelHandler;
import io.netty.channel.ChannelPipeline;

import java.util.List;
import java.util.function.Supplier;

/**
 * Puts a handler of ours behind the HTTP/1.1 codec of every connection Micronaut serves (HTTP/2
 * streams stay Micronaut's), for requests served straight from Netty (live streams, registrations, notifications).
 */
public final class ConnectionHandlers {

    /** The live stream's handler ({@code live.StreamChannels}). */
    public static final String STREAM = "herald-stream";
    /** The handler of requests served straight from Netty ({@link DirectRequests}), behind the stream's. */
    public static final String DIRECT = "herald-direct";

    private ConnectionHandlers() {
    }

    /**
     * A customizer that adds {@code handler.get()} as {@code name} to each HTTP/1.1 connection, right
     * behind the first of {@code behind} in its pipeline (the HTTP codec when none of them is there).
     */
    public static NettyServerCustomizer installing(String name, List<String> behind, Supplier<ChannelHandler> handler) {
        return new Installer(null, name, behind, handler);
    }

    private record Installer(Channel channel, String name, List<String> behind, Supplier<ChannelHandler> handler)
            implements NettyServerCustomizer {

        @Override
        public NettyServerCustomizer specializeForChannel(Channel channel, ChannelRole role) {
            return role == ChannelRole.CONNECTION ? new Installer(channel, name, behind, handler) : this;
        }

        @Override
        public void onStreamPipelineBuilt() {
            if (channel == null) {
                return;
            }
            ChannelPipeline pipeline = channel.pipeline();
            if (pipeline.get(ChannelPipelineCustomizer.HANDLER_HTTP_SERVER_CODEC) == null
                    || pipeline.get(ChannelPipelineCustomizer.HANDLER_MICRONAUT_INBOUND) == null
                    || pipeline.get(name) != null) {
                return;
            }
            String after = behind.stream().filter(h -> pipeline.get(h) != null).findFirst()
                    .orElse(ChannelPipelineCustomizer.HANDLER_HTTP_SERVER_CODEC);
            pipeline.addAfter(after, name, handler.get());
        }
    }
}
