package dev.herald.bench;

import java.io.IOException;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * The README's run command as a child process on an empty data folder ({@code java -Xmx512m -jar
 * target/herald.jar}, embedded PostgreSQL and Redis), with helpers a benchmark needs around it.
 */
final class BenchService implements AutoCloseable {

    private static final Pattern PG_LINE = Pattern.compile("PostgreSQL: embedded, data in (.+?), port (\\d+)");

    private final Process process;
    private final int port;
    private final Path logFile;
    private final String adminKey;
    private final HttpClient client = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
            .connectTimeout(Duration.ofSeconds(5)).build();

    private BenchService(Process process, int port, Path logFile, String adminKey) {
        this.process = process;
        this.port = port;
        this.logFile = logFile;
        this.adminKey = adminKey;
    }

    static BenchService start(Path jar, Path dataDir, Path logFile, Map<String, String> env) throws Exception {
        if (!Files.isRegularFile(jar)) {
            throw new IllegalStateException("No service jar at " + jar + "; run ./mvnw -Pbench verify");
        }
        deleteRecursively(dataDir);
        Files.createDirectories(logFile.getParent());
        int port;
        try (ServerSocket socket = new ServerSocket(0)) {
            port = socket.getLocalPort();
        }
        String adminKey = "hk_admin_bench_" + Long.toHexString(System.nanoTime()) + "0123456789abcdef";
        List<String> command = new java.util.ArrayList<>(List.of(
                Paths.get(System.getProperty("java.home"), "bin", "java").toString(), "-Xmx512m"));
        // e.g. -Dbench.serviceJvmArgs=-XX:StartFlightRecording=filename=target/service.jfr to profile the service
        String extra = System.getProperty("bench.serviceJvmArgs", "");
        if (!extra.isBlank()) {
            command.addAll(List.of(extra.trim().split("\\s+")));
        }
        command.addAll(List.of("-jar", jar.toString()));
        ProcessBuilder builder = new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(logFile.toFile());
        builder.environment().remove("DATABASE_URL");
        builder.environment().remove("REDIS_URI");
        builder.environment().putAll(env);
        builder.environment().put("PORT", Integer.toString(port));
        builder.environment().put("HERALD_DATA_DIR", dataDir.toString());
        builder.environment().put("HERALD_ADMIN_KEY", adminKey);
        // the limits stay on (their cost is part of every request) but above what one load generator sends
        builder.environment().put("HERALD_LIMITS_KEY_PER_SECOND", "1000000");
        builder.environment().put("HERALD_LIMITS_KEY_BURST", "1000000");
        builder.environment().put("HERALD_LIMITS_USER_PER_SECOND", "1000000");
        builder.environment().put("HERALD_LIMITS_USER_BURST", "1000000");
        builder.environment().put("HERALD_LIMITS_DEVICE_PER_MINUTE", "1000000");
        long started = System.nanoTime();
        BenchService service = new BenchService(builder.start(), port, logFile, adminKey);
        log("service: pid %d, port %d, log %s", service.process.pid(), port, logFile);
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(180);
        HttpRequest health = HttpRequest.newBuilder(service.uri("/health")).timeout(Duration.ofSeconds(2)).build();
        while (true) {
            if (!service.process.isAlive()) {
                throw new IllegalStateException("The service exited with " + service.process.exitValue() + "; see " + logFile);
            }
            try {
                if (service.client.send(health, HttpResponse.BodyHandlers.discarding()).statusCode() == 200) {
                    break;
                }
            } catch (IOException notYet) {
                // not listening yet
            }
            if (System.nanoTime() > deadline) {
                throw new IllegalStateException("GET /health did not answer 200 within 180 s; see " + logFile);
            }
            java.util.concurrent.locks.LockSupport.parkNanos(java.util.concurrent.TimeUnit.MILLISECONDS.toNanos(100));
        }
        log("service: healthy after %.1f s", (System.nanoTime() - started) / 1e9);
        return service;
    }

    /** Deletes a folder and everything in it, if it exists. */
    static void deleteRecursively(Path dir) throws IOException {
        if (!Files.exists(dir)) {
            return;
        }
        try (Stream<Path> paths = Files.walk(dir)) {
            for (Path p : paths.sorted(Comparator.reverseOrder()).toList()) {
                Files.delete(p);
            }
        }
    }

    int port() {
        return port;
    }

    long pid() {
        return process.pid();
    }

    String adminKey() {
        return adminKey;
    }

    URI uri(String path) {
        return URI.create("http://127.0.0.1:" + port + path);
    }

    HttpResponse<String> post(String path, String bearer, String json) throws IOException, InterruptedException {
        return client.send(HttpRequest.newBuilder(uri(path)).header("Authorization", "Bearer " + bearer)
                .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(json)).build(),
                HttpResponse.BodyHandlers.ofString());
    }

    /** The sum of the service's metric series whose line starts with {@code series} (0 when there is none). */
    double metric(String series) throws IOException, InterruptedException {
        double sum = 0;
        for (String line : get("/metrics").body().lines().toList()) {
            if (line.startsWith(series)) {
                sum += Double.parseDouble(line.substring(line.lastIndexOf(' ') + 1));
            }
        }
        return sum;
    }

    /** Runs a full GC in the service ({@code jcmd GC.run}) and answers the heap in use after it, in KB. */
    long liveHeapKb() throws IOException, InterruptedException {
        Process gc = new ProcessBuilder(Paths.get(System.getProperty("java.home"), "bin", "jcmd").toString(),
                Long.toString(process.pid()), "GC.run").redirectErrorStream(true).start();
        gc.getInputStream().readAllBytes();
        gc.waitFor();
        double bytes = 0;
        for (String line : get("/metrics").body().lines().toList()) {
            if (line.startsWith("jvm_memory_used_bytes{") && line.contains("area=\"heap\"")) {
                bytes += Double.parseDouble(line.substring(line.lastIndexOf(' ') + 1));
            }
        }
        return (long) (bytes / 1024);
    }

    /** The service's {@code jcmd GC.class_histogram}, its first {@code lines} lines. */
    List<String> classHistogram(int lines) throws IOException, InterruptedException {
        Process histogram = new ProcessBuilder(Paths.get(System.getProperty("java.home"), "bin", "jcmd").toString(),
                Long.toString(process.pid()), "GC.class_histogram").redirectErrorStream(true).start();
        List<String> out = new String(histogram.getInputStream().readAllBytes()).lines().limit(lines).toList();
        histogram.waitFor();
        return out;
    }

    HttpResponse<String> get(String path) throws IOException, InterruptedException {
        return client.send(HttpRequest.newBuilder(uri(path)).GET().build(), HttpResponse.BodyHandlers.ofString());
    }

    HttpResponse<String> expect(HttpResponse<String> response, int status, String what) {
        if (response.statusCode() != status) {
            throw new IllegalStateException(what + ": expected " + status + ", got " + response.statusCode() + " "
                    + response.body());
        }
        return response;
    }

    static String field(HttpResponse<String> response, String name) {
        Matcher m = Pattern.compile("\"" + name + "\"\\s*:\\s*\"([^\"]+)\"").matcher(response.body());
        if (!m.find()) {
            throw new IllegalStateException("no \"" + name + "\" in " + response.body());
        }
        return m.group(1);
    }

    /** Waits (up to 2 minutes) until the service has no routing job left: every notification routed. */
    void awaitNoRoutingJobs() throws IOException, java.sql.SQLException {
        long deadline = System.nanoTime() + java.util.concurrent.TimeUnit.MINUTES.toNanos(2);
        try (java.sql.Connection c = java.sql.DriverManager.getConnection(jdbcUrl(), "postgres", "");
             java.sql.Statement s = c.createStatement()) {
            while (System.nanoTime() < deadline) {
                try (java.sql.ResultSet rs = s.executeQuery("SELECT count(*) FROM jobs")) {
                    rs.next();
                    if (rs.getLong(1) == 0) {
                        return;
                    }
                }
                java.util.concurrent.locks.LockSupport.parkNanos(java.util.concurrent.TimeUnit.MILLISECONDS.toNanos(50));
            }
        }
        throw new IllegalStateException("routing jobs still pending after 2 minutes");
    }

    /** The embedded PostgreSQL's JDBC URL, from the service's startup line. */
    String jdbcUrl() throws IOException {
        Matcher m = PG_LINE.matcher(Files.readString(logFile));
        if (!m.find()) {
            throw new IllegalStateException("No \"PostgreSQL: embedded ...\" line in " + logFile);
        }
        return "jdbc:postgresql://127.0.0.1:" + m.group(2) + "/postgres";
    }

    long rssKb() throws IOException {
        for (String line : Files.readAllLines(Paths.get("/proc/" + process.pid() + "/status"))) {
            if (line.startsWith("VmRSS:")) {
                return Long.parseLong(line.replaceAll("[^0-9]", ""));
            }
        }
        return -1;
    }

    /** CPU ticks (1/100 s, user + system) the service JVM has used so far. */
    long cpuTicks() throws IOException {
        String stat = Files.readString(Paths.get("/proc/" + process.pid() + "/stat"));
        String[] f = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
        return Long.parseLong(f[11]) + Long.parseLong(f[12]);
    }

    @Override
    public void close() throws InterruptedException {
        process.destroy();
        if (!process.waitFor(60, TimeUnit.SECONDS)) {
            process.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
        }
    }

    static void log(String format, Object... args) {
        System.out.printf(Locale.ROOT, "[bench] " + format + "%n", args);
    }

    static String[] row(String name, String format, Object... args) {
        return new String[] {name, String.format(Locale.ROOT, format, args)};
    }

    static String table(List<String[]> rows) {
        int w0 = Math.max(6, rows.stream().mapToInt(r -> r[0].length()).max().orElse(6));
        int w1 = Math.max(5, rows.stream().mapToInt(r -> r[1].length()).max().orElse(5));
        StringBuilder out = new StringBuilder();
        out.append("| ").append(pad("metric", w0)).append(" | ").append(pad("value", w1)).append(" |\n");
        out.append("|").append("-".repeat(w0 + 2)).append("|").append("-".repeat(w1 + 2)).append("|\n");
        for (String[] r : rows) {
            out.append("| ").append(pad(r[0], w0)).append(" | ").append(pad(r[1], w1)).append(" |\n");
        }
        return out.toString();
    }

    private static String pad(String s, int width) {
        return s + " ".repeat(Math.max(0, width - s.length()));
    }
}
