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
import org.apache.hc.core5.http.ContentType;
import org.apache.hc.core5.http.HttpException;
import org.apache.hc.core5.http.HttpHost;
import org.apache.hc.core5.http.HttpRequest;
import org.apache.hc.core5.http.config.Http1Config;
import org.apache.hc.core5.http.protocol.HttpContext;
import org.apache.hc.core5.http.ssl.TLS;
import org.apache.hc.core5.http2.HttpVersionPolicy;
import org.apache.hc.core5.http2.config.H2Config;
import org.apache.hc.core5.io.CloseMode;
import org.apache.hc.core5.reactor.IOReactorConfig;
import org.apache.hc.core5.ssl.SSLContexts;
import org.apache.hc.core5.util.Timeout;

import java.net.ProxySelector;
import java.net.URI;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;

/**
 * The HTTP connection to FCM shared by every app's credential: one Apache HttpClient 5 async client (the library
 * firebase-admin's own {@link ApacheHttp2Transport} wraps), so requests in flight hold a connection but no thread.
 * Over TLS it negotiates HTTP/2 with Google by ALPN; to a plain {@code http://} base URL it speaks HTTP/1.1.
 *
 * <p>Requests are addressed to {@code https://fcm.googleapis.com} as firebase-admin addresses them; when a base URL
 * is configured, the route planner sends every connection for that host there instead (the request keeps its
 * {@code Host: fcm.googleapis.com}). The same client, wrapped as an {@link HttpTransport}, is given to each
 * {@code FirebaseApp}, so nothing firebase-admin sends bypasses the rewrite or starts its own process-wide client.
 *
 * <p>Thread-safe. Callbacks run on the client's I/O threads.
 */
final class FcmEndpoint implements AutoCloseable {

    static final String FCM_HOST = "fcm.googleapis.com";
    static final URI FCM_URI = URI.create("https://" + FCM_HOST + "/");

    /** firebase-admin's limit: "the concurrent stream limit of the FCM backend". */
    private static final int MAX_CONCURRENT_STREAMS = 100;
    private static final Timeout CONNECT_TIMEOUT = Timeout.ofSeconds(10);
    private static final Timeout RESPONSE_TIMEOUT = Timeout.ofSeconds(30);

    private final CloseableHttpAsyncClient client;
    private final HttpTransport transport;

    /**
     * @param baseUrl        empty for Google; else {@code scheme://host[:port]} standing for
     *                       {@code https://fcm.googleapis.com} (no path)
     * @param maxConnections connections to FCM at most; further requests wait for one without a thread
     */
    FcmEndpoint(String baseUrl, int maxConnections) {
        HttpHost target = target(baseUrl);
        client = HttpAsyncClientBuilder.create()
                .setConnectionManager(PoolingAsyncClientConnectionManagerBuilder.create()
                        .setMaxConnTotal(maxConnections)
                        .setMaxConnPerRoute(maxConnections)
                        .setDefaultConnectionConfig(ConnectionConfig.custom().setConnectTimeout(CONNECT_TIMEOUT).build())
                        .setDefaultTlsConfig(TlsConfig.custom()
                                .setVersionPolicy(HttpVersionPolicy.NEGOTIATE)
                                .setSupportedProtocols(TLS.V_1_3, TLS.V_1_2)
                                .build())
                        .setTlsStrategy(ClientTlsStrategyBuilder.create()
                                .setSslContext(SSLContexts.createSystemDefault())
                                .build())
                        .build())
                .setH2Config(H2Config.custom().setMaxConcurrentStreams(MAX_CONCURRENT_STREAMS).build())
                .setHttp1Config(Http1Config.DEFAULT)
                .setIOReactorConfig(IOReactorConfig.custom().setTcpNoDelay(true).build())
                .setDefaultRequestConfig(RequestConfig.custom().setResponseTimeout(RESPONSE_TIMEOUT).build())
                .setRoutePlanner(new Rewrite(target))
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
        transport = new ApacheHttp2Transport(client); // starts the client
    }

    /** The transport for {@code FirebaseOptions}: this endpoint's client, rewrite included. */
    HttpTransport transport() {
        return transport;
    }

    /**
     * POSTs a JSON body to {@code https://fcm.googleapis.com<path>} (or the base URL standing for it). The future
     * completes with any HTTP response, or exceptionally when no response came (connection refused or lost,
     * timeout, client closed).
     */
    CompletableFuture<SimpleHttpResponse> post(String path, Map<String, List<String>> headers, byte[] json) {
        SimpleHttpRequest request = SimpleHttpRequest.create("POST", FCM_URI.resolve(path));
        headers.forEach((name, values) -> values.forEach(value -> request.addHeader(name, value)));
        request.setBody(json, ContentType.APPLICATION_JSON);
        CompletableFuture<SimpleHttpResponse> answer = new CompletableFuture<>();
        try {
            client.execute(request, new FutureCallback<>() {
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
        } catch (RuntimeException notRunning) {
            answer.completeExceptionally(notRunning);
        }
        return answer;
    }

    /** Closes every connection at once; requests in flight fail. Idempotent. */
    @Override
    public void close() {
        client.close(CloseMode.IMMEDIATE);
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
                    + "https://" + FCM_HOST + ", without a path; was " + baseUrl);
        }
        return new HttpHost(uri.getScheme(), uri.getHost(), uri.getPort());
    }

    /** Routes connections for {@code fcm.googleapis.com} to the configured host; others as the JVM's proxy settings say. */
    private static final class Rewrite implements HttpRoutePlanner {
        private final HttpHost target;
        private final HttpRoutePlanner system = new SystemDefaultRoutePlanner(ProxySelector.getDefault());

        Rewrite(HttpHost target) {
            this.target = target;
        }

        @Override
        public HttpRoute determineRoute(HttpHost host, HttpContext context) throws HttpException {
            return system.determineRoute(rewrite(host), context);
        }

        @Override
        public HttpRoute determineRoute(HttpHost host, HttpRequest request, HttpContext context) throws HttpException {
            return system.determineRoute(rewrite(host), request, context);
        }

        private HttpHost rewrite(HttpHost host) {
            return target != null && host != null && FCM_HOST.equalsIgnoreCase(host.getHostName()) ? target : host;
        }
    }
}
