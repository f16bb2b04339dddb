package dev.herald.support;

import com.eatthepath.pushy.apns.server.MockApnsServer;
import com.eatthepath.pushy.apns.server.MockApnsServerBuilder;
import com.eatthepath.pushy.apns.server.RejectedNotificationException;
import com.eatthepath.pushy.apns.server.RejectionReason;
import com.eatthepath.pushy.apns.server.UnregisteredDeviceTokenException;
import com.nimbusds.jose.JWSAlgorithm;
import com.nimbusds.jose.crypto.ECDSAVerifier;
import com.nimbusds.jose.crypto.impl.ECDSA;
import com.nimbusds.jose.util.Base64URL;
import com.nimbusds.jwt.SignedJWT;
import io.netty.buffer.ByteBuf;
import io.netty.channel.nio.NioEventLoopGroup;
import io.netty.handler.codec.http2.Http2Headers;
import io.netty.util.concurrent.DefaultThreadFactory;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyFactory;
import java.security.interfaces.ECPublicKey;
import java.security.spec.X509EncodedKeySpec;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Stream;

/**
 * An APNs stand-in for tests: pushy's {@link MockApnsServer}, real HTTP/2 over TLS on loopback, with a
 * certificate made at start-up for {@code IP:127.0.0.1} (trust {@link #certificatePath()} in the client).
 *
 * <p>It checks token authentication as APNs does: {@code authorization: bearer <jwt>} must be an ES256
 * JWT whose {@code kid} is a key registered with {@link #trust}, whose {@code iss} is that key's team and
 * whose signature that key verifies; otherwise the push is answered 403 ({@code MissingProviderToken},
 * {@code InvalidProviderToken}, or {@code ExpiredProviderToken} for a token issued over an hour ago).
 * Authenticated pushes are accepted unless {@link #answer} scripted something else for their token.
 * Every request is recorded in {@link #received()}, answered or not.
 *
 * <p>{@link #hold()} makes requests wait at a {@link Gate} until it opens. The mock answers on its own
 * event loop threads, and a request waiting at a gate blocks its thread: open gates before
 * {@link #stop()}. Thread-safe. Needs {@code openssl} on the path.
 */
public final class MockApns implements AutoCloseable {

    private static final Duration GATE_TIMEOUT = Duration.ofSeconds(10);
    private static final Duration TOKEN_LIFETIME = Duration.ofHours(1);

    private final Path dir;
    private final Path certificate;
    private final Path privateKey;
    private final NioEventLoopGroup group;
    private final List<Received> received = new CopyOnWriteArrayList<>();
    private final Map<String, Answer> answers = new ConcurrentHashMap<>();
    private final Map<String, TrustedKey> keys = new ConcurrentHashMap<>();
    private volatile Gate gate = Gate.alreadyOpen();
    /** Which requests the gate holds. */
    private volatile java.util.function.Predicate<Map<String, String>> gated = headers -> true;
    private final Map<String, Instant> verified = new ConcurrentHashMap<>();
    private final java.util.concurrent.atomic.AtomicLong count = new java.util.concurrent.atomic.AtomicLong();
    private final java.util.concurrent.atomic.AtomicLong repeats = new java.util.concurrent.atomic.AtomicLong();
    private final java.util.concurrent.atomic.AtomicLong delivered = new java.util.concurrent.atomic.AtomicLong();
    private volatile Answer everyone;
    private final java.util.Set<String> tokensSeen = ConcurrentHashMap.newKeySet();
    private volatile boolean recording = true;
    private volatile MockApnsServer server;
    private volatile int port;

    /** One request as the mock received it: the token from {@code :path}, every header, the payload. */
    public record Received(String token, Map<String, String> headers, String payload) {

        public String header(String name) {
            return headers.get(name);
        }
    }

    /** How the mock answers one token: accept ({@code reason} null) or reject with APNs' reason. */
    public record Answer(RejectionReason reason, Instant invalidSince) {

        public static Answer accept() {
            return new Answer(null, null);
        }

        /** 410 {@code Unregistered}, with the time since when the token is invalid. */
        public static Answer unregistered(Instant since) {
            return new Answer(RejectionReason.UNREGISTERED, Objects.requireNonNull(since));
        }

        /** The status and reason APNs gives for {@code reason}, e.g. 400 {@code BadDeviceToken}, 429, 503. */
        public static Answer reject(RejectionReason reason) {
            return new Answer(Objects.requireNonNull(reason), null);
        }
    }

    private record TrustedKey(String teamId, ECPublicKey key) {
    }

    @SuppressWarnings("deprecation") // pushy's mock server picks its channel class by the group's class
    private MockApns(Path dir) throws IOException, InterruptedException {
        this.dir = dir;
        this.certificate = dir.resolve("apns-cert.pem");
        this.privateKey = dir.resolve("apns-key.pem");
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", privateKey.toString(), "-out", certificate.toString(), "-days", "2",
                "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1");
        this.group = new NioEventLoopGroup(4, new DefaultThreadFactory("mock-apns", true));
    }

    /** Makes a certificate and starts listening on a free port of 127.0.0.1. */
    public static MockApns create() {
        try {
            MockApns mock = new MockApns(Files.createTempDirectory("mock-apns"));
            mock.start();
            return mock;
        } catch (IOException e) {
            throw new IllegalStateException("could not make the mock's certificate (is openssl installed?)", e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        }
    }

    public int port() {
        return port;
    }

    /** The mock's self-signed certificate (PEM), for the client's trusted chain. */
    public Path certificatePath() {
        return certificate;
    }

    /** Accepts provider tokens signed by this {@code .p8} key (PKCS#8 EC PEM) under this key id and team. */
    public void trust(String teamId, String keyId, String p8Pem) {
        keys.put(keyId, new TrustedKey(teamId, publicKeyOf(p8Pem)));
    }

    /** From now on, answers pushes to {@code token} this way. */
    public void answer(String token, Answer answer) {
        answers.put(token, answer);
    }

    /** Answers every push with {@code answer} from now on (an outage: 503, 429), until called with null. */
    public void answerEveryone(Answer answer) {
        everyone = answer;
    }

    /** How many pushes were accepted (200), ever: the pushes APNs took. */
    public long delivered() {
        return delivered.get();
    }

    /** Every request received so far, in order of arrival. */
    public List<Received> received() {
        return List.copyOf(received);
    }

    /** How many times each {@code apns-id} (lower case) arrived: more than once is a push sent again. */
    public Map<String, Long> countsByApnsId() {
        Map<String, Long> counts = new java.util.HashMap<>();
        for (Received r : received) {
            counts.merge(r.header("apns-id").toLowerCase(), 1L, Long::sum);
        }
        return counts;
    }

    public List<Received> receivedFor(String token) {
        return received.stream().filter(r -> r.token().equals(token)).toList();
    }

    /** Whether to keep every request (default); off under load, where only the counts are kept. */
    public void recording(boolean on) {
        recording = on;
    }

    /** How many requests arrived since the last {@link #resetCounts()}. */
    public long count() {
        return count.get();
    }

    /** How many requests repeated the {@code apns-id} of an earlier one (since the last reset). */
    public long repeats() {
        return repeats.get();
    }

    public void resetCounts() {
        count.set(0);
        repeats.set(0);
        tokensSeen.clear();
    }

    /** Makes every request from now on wait until the returned gate opens (each at most 10 s). */
    public Gate hold() {
        return hold(GATE_TIMEOUT);
    }

    /** As {@link #hold()}, each request waiting at most {@code timeout}: an APNs that hangs that long. */
    public Gate hold(Duration timeout) {
        return hold(timeout, headers -> true);
    }

    /** As {@link #hold()}, for every request but VoIP pushes: an APNs slow to answer notifications. */
    public Gate holdAllButVoip() {
        return hold(GATE_TIMEOUT, headers -> !"voip".equals(headers.get("apns-push-type")));
    }

    private Gate hold(Duration timeout, java.util.function.Predicate<Map<String, String>> which) {
        Gate held = new Gate(timeout);
        gated = which;
        gate = held;
        return held;
    }

    /** (Re)starts listening, on the port of the first start. */
    public synchronized void start() {
        if (server != null) {
            return;
        }
        try {
            MockApnsServer built = new MockApnsServerBuilder()
                    .setServerCredentials(certificate.toFile(), privateKey.toFile(), null)
                    .setEventLoopGroup(group)
                    .setHandlerFactory(session -> this::handle)
                    .build();
            port = built.start(port).get(5, TimeUnit.SECONDS);
            server = built;
        } catch (Exception e) {
            throw new IllegalStateException("the mock APNs could not listen on port " + port, e);
        }
    }

    /** Stops listening and drops every connection, as an outage would. */
    public synchronized void stop() {
        if (server == null) {
            return;
        }
        try {
            server.shutdown().get(5, TimeUnit.SECONDS);
        } catch (Exception e) {
            throw new IllegalStateException("the mock APNs did not stop", e);
        } finally {
            server = null;
        }
    }

    @Override
    public void close() {
        gate.open();
        stop();
        group.shutdownGracefully(0, 1, TimeUnit.SECONDS).awaitUninterruptibly(2, TimeUnit.SECONDS);
        try (Stream<Path> files = Files.walk(dir)) {
            files.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        } catch (IOException ignored) {
            // a temp directory left behind
        }
    }

    private volatile java.util.function.BiConsumer<Map<String, String>, Long> listener;

    /** Called with each push's headers and {@code System.nanoTime()} on arrival (before it is answered). */
    public void onPush(java.util.function.BiConsumer<Map<String, String>, Long> listener) {
        this.listener = listener;
    }

    private void handle(Http2Headers headers, ByteBuf payload) throws RejectedNotificationException {
        long arrived = System.nanoTime();
        Map<String, String> all = new LinkedHashMap<>();
        headers.forEach(h -> all.put(h.getKey().toString(), h.getValue().toString()));
        String path = all.getOrDefault(":path", "");
        String token = path.substring(path.lastIndexOf('/') + 1);
        if (recording) {
            received.add(new Received(token, Map.copyOf(all), payload == null ? "" : payload.toString(StandardCharsets.UTF_8)));
        }
        count.incrementAndGet();
        java.util.function.BiConsumer<Map<String, String>, Long> l = listener;
        if (l != null) {
            l.accept(all, arrived);
        }
        if (!tokensSeen.add(all.getOrDefault("apns-id", token))) {
            repeats.incrementAndGet();
        }
        if (gated.test(all)) {
            gate.pass();
        }
        authenticate(all.get("authorization"));
        Answer scripted = everyone;
        Answer answer = scripted != null ? scripted : answers.getOrDefault(token, Answer.accept());
        if (answer.reason() == RejectionReason.UNREGISTERED) {
            throw new UnregisteredDeviceTokenException(answer.invalidSince());
        }
        if (answer.reason() != null) {
            throw new RejectedNotificationException(answer.reason());
        }
        delivered.incrementAndGet();
    }

    private void authenticate(String authorization) throws RejectedNotificationException {
        if (authorization == null || !authorization.startsWith("bearer ")) {
            throw new RejectedNotificationException(RejectionReason.MISSING_PROVIDER_TOKEN);
        }
        Instant verifiedAt = verified.get(authorization);
        if (verifiedAt != null && verifiedAt.isAfter(Instant.now().minus(TOKEN_LIFETIME))) {
            // APNs, too, checks a provider token once and trusts it on later requests for up to an hour
            return;
        }
        try {
            SignedJWT jwt = SignedJWT.parse(authorization.substring("bearer ".length()));
            TrustedKey trusted = keys.get(jwt.getHeader().getKeyID());
            if (!JWSAlgorithm.ES256.equals(jwt.getHeader().getAlgorithm()) || trusted == null
                    || !trusted.teamId().equals(jwt.getJWTClaimsSet().getIssuer())) {
                throw new RejectedNotificationException(RejectionReason.INVALID_PROVIDER_TOKEN);
            }
            // JCA (and so pushy) writes ECDSA signatures in DER; JOSE wants R || S
            byte[] signature = jwt.getSignature().decode();
            byte[] jose = signature.length == 64 ? signature : ECDSA.transcodeSignatureToConcat(signature, 64);
            if (!new ECDSAVerifier(trusted.key()).verify(jwt.getHeader(), jwt.getSigningInput(), Base64URL.encode(jose))) {
                throw new RejectedNotificationException(RejectionReason.INVALID_PROVIDER_TOKEN);
            }
            Instant issued = jwt.getJWTClaimsSet().getIssueTime() == null ? Instant.EPOCH
                    : jwt.getJWTClaimsSet().getIssueTime().toInstant();
            if (issued.isBefore(Instant.now().minus(TOKEN_LIFETIME))) {
                throw new RejectedNotificationException(RejectionReason.EXPIRED_PROVIDER_TOKEN);
            }
            verified.put(authorization, issued);
        } catch (RejectedNotificationException e) {
            throw e;
        } catch (Exception e) {
            throw new RejectedNotificationException(RejectionReason.INVALID_PROVIDER_TOKEN);
        }
    }

    /** The public half of a PKCS#8 EC private key, derived by openssl. */
    private ECPublicKey publicKeyOf(String p8Pem) {
        try {
            Path pem = Files.createTempFile(dir, "key", ".p8");
            Path der = dir.resolve(pem.getFileName() + ".pub.der");
            Files.writeString(pem, p8Pem);
            openssl("pkey", "-in", pem.toString(), "-pubout", "-outform", "DER", "-out", der.toString());
            byte[] encoded = Files.readAllBytes(der);
            Files.delete(pem);
            Files.delete(der);
            return (ECPublicKey) KeyFactory.getInstance("EC").generatePublic(new X509EncodedKeySpec(encoded));
        } catch (Exception e) {
            throw new IllegalArgumentException("not a PKCS#8 EC private key in PEM", e);
        }
    }

    private static void openssl(String... args) throws IOException, InterruptedException {
        List<String> command = new ArrayList<>(List.of("openssl"));
        command.addAll(List.of(args));
        Process process = new ProcessBuilder(command).redirectErrorStream(true).start();
        String output = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (!process.waitFor(10, TimeUnit.SECONDS) || process.exitValue() != 0) {
            throw new IOException("openssl " + args[0] + " failed: " + output);
        }
    }

    /**
     * Where held requests wait. Counts how many wait at once, and the most that ever did: with a client
     * that bounds its pushes in flight, {@link #peak()} is that bound.
     */
    public static final class Gate {

        private final CountDownLatch opened = new CountDownLatch(1);
        private final AtomicInteger waiting = new AtomicInteger();
        private final AtomicInteger peak = new AtomicInteger();
        private final Duration timeout;

        Gate(Duration timeout) {
            this.timeout = timeout;
        }

        static Gate alreadyOpen() {
            Gate gate = new Gate(Duration.ZERO);
            gate.open();
            return gate;
        }

        public void open() {
            opened.countDown();
        }

        public int waiting() {
            return waiting.get();
        }

        public int peak() {
            return peak.get();
        }

        void pass() {
            if (opened.getCount() == 0) {
                return;
            }
            peak.accumulateAndGet(waiting.incrementAndGet(), Math::max);
            try {
                opened.await(timeout.toMillis(), TimeUnit.MILLISECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            } finally {
                waiting.decrementAndGet();
            }
        }
    }
}
