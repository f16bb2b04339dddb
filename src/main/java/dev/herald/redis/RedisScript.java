package dev.herald.redis;

import io.lettuce.core.RedisNoScriptException;
import io.lettuce.core.ScriptOutputType;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;

/**
 * A Lua script from the class path, run by its SHA-1 ({@code EVALSHA}) and sent whole only when Redis
 * does not know it yet (first use, or after Redis restarted). Scripts here touch one key each, so they
 * run on a Redis Cluster too. Thread-safe, non-blocking.
 */
public final class RedisScript {

    private final String source;
    private final String sha;
    private final ScriptOutputType output;

    private RedisScript(String source, ScriptOutputType output) {
        this.source = source;
        this.output = output;
        try {
            this.sha = HexFormat.of().formatHex(MessageDigest.getInstance("SHA-1")
                    .digest(source.getBytes(StandardCharsets.UTF_8)));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    /** The script at {@code resource} (e.g. {@code /redis/token_bucket.lua}), answering {@code output}. */
    public static RedisScript load(String resource, ScriptOutputType output) {
        try (InputStream in = RedisScript.class.getResourceAsStream(resource)) {
            if (in == null) {
                throw new IllegalStateException("no script at " + resource);
            }
            return new RedisScript(new String(in.readAllBytes(), StandardCharsets.UTF_8), output);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** Runs the script; may throw at once when Redis is not connected, or complete exceptionally. */
    public <T> CompletableFuture<T> run(Redis redis, String[] keys, String... args) {
        return redis.async().<T>evalsha(sha, output, keys, args).toCompletableFuture()
                .exceptionallyCompose(e -> unwrap(e) instanceof RedisNoScriptException
                        ? redis.async().<T>eval(source, output, keys, args).toCompletableFuture()
                        : CompletableFuture.failedFuture(e));
    }

    public static Throwable unwrap(Throwable e) {
        return (e instanceof CompletionException || e instanceof java.util.concurrent.ExecutionException)
                && e.getCause() != null ? e.getCause() : e;
    }
}
