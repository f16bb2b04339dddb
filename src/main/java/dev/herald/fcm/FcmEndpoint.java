package dev.herald.fcm;

import com.google.api.client.http.HttpTransport;
import com.google.firebase.internal.ApacheHttp2Transport;
import org.apache.hc.client5.http.HttpRoute;
import org.apache.hc.client5.http.async.methods.SimpleHttpRequest;
import org.apache.hc.client5.http.async.methods.SimpleHttpResponse;
import org.apache.hc.client5.http.config.ConnectionConfig;
import org.apache.hc.client5.http.config.RequestConfig;
import org.apache.hc.client5.http.config.TlsConfig;
import org.apache.hc.client5.http.impl.async.CloseableHttpAsyncClient;
import org.apache.hc.client5.http.impl.async.HttpAsyncClientBuilder;
import org.apache.hc.client5.http.impl.nio.PoolingAsyncClientConnectionManagerBuilder;
import org.apache.hc.client5.http.impl.routing.SystemDefaultRoutePlanner;
import org.apache.hc.client5.http.routing.HttpRoutePlanner;
import org.apache.hc.client5.http.ssl.ClientTlsStrategyBuilder;
import org.apache.hc.core5.concurrent.FutureCallback;
import org.apache.hc.core5.function.Callback;
import org.apache.hc.core5.http.ContentType;
import org.apache.hc.core5.http.Header;
import org.apache.hc.core5.http.HttpException;
import org.apache.hc.core5.http.HttpHost;
import org.apache.hc.core5.http.HttpRequest;
import org.apache.hc.core5.http.Method;
import org.apache.hc.core5.http.URIScheme;
import org.apache.hc.core5.http.protocol.HttpContext;
import org.apache.hc.core5.http.ssl.TLS;
import org.apache.hc.core5.http2.HttpVersionPolicy;
import org.apache.hc.core5.http2.config.H2Config;
import org.apache.hc.core5.io.CloseMode;
import org.apache.hc.core5.reactor.IOReactorConfig;
import org.apache.hc.core5.ssl.SSLContexts;
import org.apache.hc.core5.util.Timeout;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.net.ProxySelector;
import java.net.URI;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The HTTP/2 connections to FCM shared by every app's credential, on Apache HttpClient 5 async (the library
 * firebase-admin's own {@link ApacheHttp2Transport} wraps): a request in flight is an HTTP/2 stream, holding no
 * thread. There are {@code lanes} clients, each with one I/O thread and one multiplexed connection (FCM allows 100
 * streams on a connection; more wait in the connection's queue), and requests go round the lanes.
 *
 * <p>Over TLS the lanes negotiate HTTP/2 with Google by ALPN. To a plain {@code http://} base URL they speak HTTP/2
 * with prior knowledge (h2c). Requests are addressed to {@code https://fcm.googleapis.com} as firebase-admin
 * addresses them; when a base URL is configured the route planner sends every connection for that host there
 * instead (requests keep their {@code :authority}). Lane 0, wrapped as an {@link HttpTransport}, is given to each
 * {@code FirebaseApp}, so nothing firebase-admin sends bypasses the rewrite or starts its process-wide client.
 *
 * <p>Thread-safe. Callbacks run on the lanes' I/O threads.
 */
final class FcmEndpoint implements AutoCloseable {

    static final HttpHost FCM = new HttpHost(URIScheme.HTTPS.id, "fcm.googleapis.com");
    static final URI FCM_URI = URI.create(FCM.toURI() + "/");

    /** firebase-admin's setting: "the concurrent stream limit of the FCM backend". */
    private static final int MAX_CONCURRENT_STREAMS = 100;
    private static final Timeout CONNECT_TIMEOUT = Timeout.ofSeconds(10);
    private static final Timeout RESPONSE_TIMEOUT = Timeout.ofSeconds(30);

    private static final Logger LOG = LoggerFactory.getLogger(FcmEndpoint.class);

    private final CloseableHttpAsyncClient[] lanes;
    private final AtomicInteger next = new AtomicInteger();
    private final HttpTransport transport;
    private volatile boolean closing;

    /**
     * @param baseUrl empty for Google; else {@code scheme://host[:port]} standing for {@code https://fcm.googleapis.com}
     * @param lanes   connections (and I/O threads); one per core is cheapest, each carries 100 streams at Google
     */
    FcmEndpoint(String baseUrl, int lanes) {
        Rewrite rewrite = new Rewrite(target(baseUrl));
        this.lanes = new CloseableHttpAsyncClient[lanes];
        for (int i = 0; i < lanes; i++) {
            this.lanes[i] = lane(rewrite, this::ioFailure);
            this.lanes[i].start();
        }
        transport = new ApacheHttp2Transport(this.lanes[0]);
    }

    /** The transport for {@code FirebaseOptions}: lane 0, rewrite included. */
    HttpTransport transport() {
        return transport;
    }

    /**
     * POSTs a JSON body to {@code https://fcm.googleapis.com<path>} (or the base URL standing for it). The future
     * completes with any HTTP response, or exceptionally when none came (connection refused or lost, timeout, closed).
     */
    CompletableFuture<SimpleHttpResponse> post(String path, Header[] headers, byte[] json) {
        SimpleHttpRequest request = SimpleHttpRequest.create(Method.POST, FCM, path);
        request.setHeaders(headers);
        request.setBody(json, ContentType.APPLICATION_JSON);
        CompletableFuture<SimpleHttpResponse> answer = new CompletableFuture<>();
        try {
            lanes[Math.floorMod(next.getAndIncrement(), lanes.length)].execute(request, new FutureCallback<>() {
                @Override
                public void completed(SimpleHttpResponse response) {
                    answer.complete(response);
                }

                @Override
                public void failed(Exception failure) {
                    answer.completeExceptionally(failure);
                }

                @Override
                public void cancelled() {
                    answer.cancel(false);
                }
            });
        } catch (RuntimeException closed) {
            answer.completeExceptionally(closed);
        }
        return answer;
    }

    /**
     * Closes every connection at once (a graceful HTTP/2 goodbye can take seconds; {@link FcmSender#close()} has
     * already waited for the pushes in flight); requests still in flight fail. Idempotent.
     */
    @Override
    public void close() {
        closing = true;
        for (CloseableHttpAsyncClient lane : lanes) {
            lane.close(CloseMode.IMMEDIATE);
        }
    }

    /** An I/O reactor failure: worth a warning, except the channel races of closing at once. */
    private void ioFailure(Exception failure) {
        if (closing) {
            LOG.debug("FCM connection closed with {}", failure.toString());
        } else {
            LOG.warn("FCM connection failure", failure);
        }
    }

    private static CloseableHttpAsyncClient lane(Rewrite rewrite, Callback<Exception> ioFailure) {
        return HttpAsyncClientBuilder.create()
                .setConnectionManager(PoolingAsyncClientConnectionManagerBuilder.create()
                        .setMessageMultiplexing(true) // one HTTP/2 connection for every request of the lane
                        .setDefaultConnectionConfig(ConnectionConfig.custom().setConnectTimeout(CONNECT_TIMEOUT).build())
                        .setTlsConfigResolver(host -> TlsConfig.custom()
                                .setVersionPolicy(URIScheme.HTTPS.same(host.getSchemeName())
                                        ? HttpVersionPolicy.NEGOTIATE : HttpVersionPolicy.FORCE_HTTP_2)
                                .setSupportedProtocols(TLS.V_1_3, TLS.V_1_2)
                                .build())
                        .setTlsStrategy(ClientTlsStrategyBuilder.create()
                                .setSslContext(SSLContexts.createSystemDefault())
                                .build())
                        .build())
                .setH2Config(H2Config.custom().setMaxConcurrentStreams(MAX_CONCURRENT_STREAMS).build())
                .setIOReactorConfig(IOReactorConfig.custom().setIoThreadCount(1).setTcpNoDelay(true).build())
                .setDefaultRequestConfig(RequestConfig.custom().setResponseTimeout(RESPONSE_TIMEOUT).build())
                .setRoutePlanner(rewrite)
                .setIoReactorExceptionCallback(ioFailure)
                .setThreadFactory(runnable -> {
                    Thread thread = new Thread(runnable, "herald-fcm-io");
                    thread.setDaemon(true);
                    return thread;
                })
                .disableRedirectHandling()
                .disableAutomaticRetries()
                .disableCookieManagement()
                .disableConnectionState()
                .build();
    }

    private static HttpHost target(String baseUrl) {
        if (baseUrl == null || baseUrl.isBlank()) {
            return null;
        }
        URI uri = URI.create(baseUrl.strip());
        String path = uri.getPath();
        if (uri.getHost() == null || !("http".equals(uri.getScheme()) || "https".equals(uri.getScheme()))
                || (path != null && !path.isEmpty() && !path.equals("/")) || uri.getQuery() != null) {
            throw new IllegalArgumentException("herald.fcm.url must be http(s)://host[:port] standing for "
                    + FCM.toURI() + ", without a path; was " + baseUrl);
        }
        return new HttpHost(uri.getScheme(), uri.getHost(), uri.getPort());
    }

    /**
     * Routes connections for {@code fcm.googleapis.com} to the configured host; others, and all without a base URL,
     * as the JVM's proxy settings say. Routes are kept per host (the proxy lookup is not free).
     */
    private static final class Rewrite implements HttpRoutePlanner {
        private final HttpHost target;
        private final HttpRoutePlanner system = new SystemDefaultRoutePlanner(ProxySelector.getDefault());
        private final Map<HttpHost, HttpRoute> routes = new ConcurrentHashMap<>();

        Rewrite(HttpHost target) {
            this.target = target;
        }

        @Override
        public HttpRoute determineRoute(HttpHost host, HttpContext context) throws HttpException {
            return route(host, context);
        }

        @Override
        public HttpRoute determineRoute(HttpHost host, HttpRequest request, HttpContext context) throws HttpException {
            return route(host, context);
        }

        private HttpRoute route(HttpHost host, HttpContext context) throws HttpException {
            HttpRoute route = routes.get(host);
            if (route == null) {
                HttpHost to = target != null && FCM.getHostName().equalsIgnoreCase(host.getHostName()) ? target : host;
                route = system.determineRoute(to, context);
                routes.put(host, route);
            }
            return route;
        }
    }
}
