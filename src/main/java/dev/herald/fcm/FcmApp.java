package dev.herald.fcm;

import com.fasterxml.jackson.databind.JsonNode;
import com.google.api.client.http.HttpResponseException;
import com.google.auth.RequestMetadataCallback;
import com.google.auth.oauth2.GoogleCredentials;
import com.google.auth.oauth2.ServiceAccountCredentials;
import com.google.firebase.FirebaseApp;
import com.google.firebase.FirebaseOptions;
import com.google.firebase.ImplFirebaseTrampolines;
import com.google.firebase.ThreadManager;
import com.google.firebase.internal.SdkUtils;
import dev.herald.delivery.GatewayCredentials;
import dev.herald.delivery.GatewayGuard;
import dev.herald.delivery.Push;
import dev.herald.delivery.PushResult;
import org.apache.hc.client5.http.async.methods.SimpleHttpResponse;
import org.apache.hc.core5.http.Header;
import org.apache.hc.core5.http.message.BasicHeader;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * One app's FCM client for one version of its credentials: a named {@link FirebaseApp} (never the default app) holding
 * the service account's OAuth credentials and project id, and the {@link GatewayGuard} in front of it.
 *
 * <p>A push is sent as firebase-admin sends it (same URL, headers and {@code {"message": ...}} body, see
 * {@link FcmPayloads#json}) but without {@code FirebaseMessaging.sendAsync}, which runs each send on a thread of a
 * 100-thread pool that it parks for the whole exchange, and retries 503 itself for up to ~7.5 s (sleeping out
 * FCM's {@code Retry-After} up to 60 s each time). Here the access token comes from the credentials' asynchronous
 * API (at once while fresh; fetched from the account's {@code token_uri} on the shared executor, never on the caller's
 * thread, when missing or expired) and the request goes through the shared {@link FcmEndpoint}. Nothing is retried:
 * a {@link PushResult.Retry} goes back to Herald's own retry, which honours {@code Retry-After}.
 *
 * <p>Thread-safe. {@link #close()} deletes the FirebaseApp; pushes in flight still complete.
 */
final class FcmApp implements FcmClient {

    private static final Duration OPEN_FOR = Duration.ofSeconds(1);
    /** The headers firebase-admin sends with every FCM request. */
    private static final List<Header> FIREBASE_HEADERS = List.of(
            new BasicHeader("X-GOOG-API-FORMAT-VERSION", "2"),
            new BasicHeader("X-Firebase-Client", "fire-admin-java/" + SdkUtils.getVersion()));

    private final Instant version;
    private final FirebaseApp app;
    private final GoogleCredentials credentials;
    private final String path;
    private final GatewayGuard guard;
    private final Deps deps;
    private final AtomicBoolean refreshing = new AtomicBoolean();
    private volatile Headers headers = new Headers(Map.of(), new Header[0]);

    /** The request headers for one access token (google-auth hands out the same metadata map until it refreshes). */
    private record Headers(Map<String, List<String>> metadata, Header[] all) {
    }

    /** What every app's client shares: the HTTP endpoint, the executor for token fetches, answers and time. */
    /** What every app's client shares; {@code recovered} is told an app's id when its circuit closes again. */
    record Deps(FcmEndpoint endpoint, ExecutorService executor, FcmOutcomes outcomes, Clock clock, int maxInFlight,
                java.util.function.Consumer<String> recovered) {
    }

    private FcmApp(Instant version, FirebaseApp app, GatewayGuard guard, Deps deps) {
        this.version = version;
        this.app = app;
        this.credentials = ImplFirebaseTrampolines.getCredentials(app);
        this.path = "/v1/projects/" + ImplFirebaseTrampolines.getProjectId(app) + "/messages:send";
        this.guard = guard;
        this.deps = deps;
    }

    /**
     * The client for these credentials ({@code {serviceAccount: {type, project_id, private_key, client_email,
     * token_uri?, ...}}}), or {@link BadCredentials} when they cannot be made into a client. Parses the key; no I/O.
     *
     * @param name a name for the FirebaseApp, unique in the process
     */
    static FcmClient open(GatewayCredentials credentials, String name, Deps deps) {
        JsonNode account = credentials.block().path("serviceAccount");
        FirebaseApp app;
        try {
            ServiceAccountCredentials google = ServiceAccountCredentials.fromStream(
                    new ByteArrayInputStream(account.toString().getBytes(StandardCharsets.UTF_8)));
            if (google.getProjectId() == null || google.getProjectId().isBlank()) {
                return new BadCredentials(credentials.version());
            }
            FirebaseOptions options = FirebaseOptions.builder()
                    // token endpoint failures come back as Retry at once; Herald retries with backoff
                    .setCredentials(google.createWithCustomRetryStrategy(false))
                    .setProjectId(google.getProjectId())
                    .setHttpTransport(deps.endpoint().transport())
                    .setThreadManager(new SharedThreads(deps.executor()))
                    .build();
            app = FirebaseApp.initializeApp(options, name);
        } catch (IOException | RuntimeException e) {
            return new BadCredentials(credentials.version());
        }
        return new FcmApp(credentials.version(), app,
                new GatewayGuard("fcm:" + credentials.appId(), deps.maxInFlight(), OPEN_FOR,
                        () -> deps.recovered().accept(credentials.appId())), deps);
    }

    @Override
    public Instant version() {
        return version;
    }

    GatewayGuard guard() {
        return guard;
    }

    /** Sends one push (bypassing the guard); the future always completes normally. */
    CompletableFuture<PushResult> send(Push push) {
        CompletableFuture<PushResult> result = new CompletableFuture<>();
        try {
            byte[] body = FcmPayloads.json(push.content(), push.token(), deps.clock().instant());
            credentials.getRequestMetadata(FcmEndpoint.FCM_URI, deps.executor(), new RequestMetadataCallback() {
                @Override
                public void onSuccess(Map<String, List<String>> metadata) {
                    post(metadata, body, result);
                }

                @Override
                public void onFailure(Throwable failure) {
                    result.complete(tokenRefused(failure)
                            ? new PushResult.Rejected(BadCredentials.REASON)
                            : deps.outcomes().failure());
                }
            });
        } catch (RuntimeException e) {
            result.complete(deps.outcomes().failure());
        }
        return result;
    }

    @Override
    public void close() {
        app.delete();
    }

    private void post(Map<String, List<String>> metadata, byte[] body, CompletableFuture<PushResult> result) {
        deps.endpoint().post(path, headers(metadata), body).whenComplete((response, failure) ->
                result.complete(failure != null ? deps.outcomes().failure() : answer(response)));
    }

    private Header[] headers(Map<String, List<String>> metadata) {
        Headers current = headers;
        if (current.metadata() != metadata) {
            List<Header> all = new ArrayList<>(FIREBASE_HEADERS);
            metadata.forEach((name, values) -> values.forEach(value -> all.add(new BasicHeader(name, value))));
            current = new Headers(metadata, all.toArray(Header[]::new));
            headers = current;
        }
        return current.all();
    }

    private PushResult answer(SimpleHttpResponse response) {
        PushResult outcome = deps.outcomes().of(response);
        if (response.getCode() == 401 && outcome instanceof PushResult.Retry) {
            refreshToken();
        }
        return outcome;
    }

    /** FCM no longer takes the access token (revoked, clock skew): fetch a new one, once at a time. */
    private void refreshToken() {
        if (refreshing.compareAndSet(false, true)) {
            try {
                deps.executor().execute(() -> {
                    try {
                        credentials.refresh();
                    } catch (IOException | RuntimeException ignored) {
                        // the next push's token fetch will fail and say so
                    } finally {
                        refreshing.set(false);
                    }
                });
            } catch (RuntimeException shutDown) {
                refreshing.set(false);
            }
        }
    }

    /** Whether the token endpoint answered and refused the account (400/401/403: a deleted key, a bad signature). */
    private static boolean tokenRefused(Throwable failure) {
        for (Throwable cause = failure; cause != null; cause = cause.getCause()) {
            if (cause instanceof HttpResponseException refused) {
                int status = refused.getStatusCode();
                return status == 400 || status == 401 || status == 403;
            }
        }
        return false;
    }

    /** Gives firebase-admin Herald's executor instead of its process-wide pool. */
    private static final class SharedThreads extends ThreadManager {
        private final ExecutorService executor;

        SharedThreads(ExecutorService executor) {
            this.executor = executor;
        }

        @Override
        protected ExecutorService getExecutor(FirebaseApp app) {
            return executor;
        }

        @Override
        protected void releaseExecutor(FirebaseApp app, ExecutorService executor) {
            // shared by every app; FcmSender shuts it down
        }

        @Override
        protected ThreadFactory getThreadFactory() {
            return runnable -> {
                Thread thread = new Thread(runnable, "herald-fcm-app");
                thread.setDaemon(true);
                return thread;
            };
        }
    }
}
