package dev.herald.limits;

import dev.herald.redis.Redis;
import dev.herald.redis.RedisScript;
import io.lettuce.core.ScriptOutputType;
import jakarta.inject.Singleton;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.TimeUnit;

/**
 * Token buckets in Redis ({@code redis/token_bucket.lua}), shared by every node: one key per bucket, with
 * its hash tag, so it works on a Redis Cluster too. A node leases tokens a few at a time (a tenth of a
 * second's worth, at most a tenth of the burst) and spends them locally for up to {@link #LEASE}, so
 * Redis is asked about once per lease, not once per request; once half a lease is spent the next is
 * asked for ahead, so a steady stream of requests never waits for Redis. A node never lets through more
 * than Redis granted it; with N nodes a bucket may let through up to N leases and a half more than its
 * limit in a moment. Fails open: while Redis is unreachable (or slower
 * than {@link #REDIS_WAIT}) requests are let through, since limits protect the service and must not
 * stop it, and after a failure Redis is left alone for {@link #SKIP_AFTER_FAILURE}. Thread-safe,
 * non-blocking.
 */
@Singleton
public class RateLimiter {

    private static final Logger LOG = LoggerFactory.getLogger(RateLimiter.class);
    static final Duration REDIS_WAIT = Duration.ofMillis(250);

    /** Taken, or refused with the time until a token will be there. */
    public record Decision(boolean taken, Duration retryAfter) {
        static final Decision TAKEN = new Decision(true, Duration.ZERO);
    }

    static final Duration LEASE = Duration.ofSeconds(1);
    /** The most tokens leased at once: what a node may hold beyond the shared count. */
    static final int MAX_LEASE = 50;

    /** Tokens this node holds of a bucket, spendable until {@code until} (nanoTime). */
    private static final class Lease {
        int tokens;
        long until;
        /** A lease asked for ahead of need is on its way. */
        boolean refilling;
    }

    private final Redis redis;
    private final java.util.concurrent.ConcurrentHashMap<String, Lease> leases = new java.util.concurrent.ConcurrentHashMap<>();
    private final RedisScript script = RedisScript.load("/redis/token_bucket.lua", ScriptOutputType.MULTI);
    private final dev.herald.ops.OncePerMinute warnings = new dev.herald.ops.OncePerMinute();
    /** After a failure Redis is not asked for a few seconds, so an outage costs requests no waiting. */
    private volatile long skipUntil;
    static final Duration SKIP_AFTER_FAILURE = Duration.ofSeconds(5);

    RateLimiter(Redis redis) {
        this.redis = redis;
    }

    /** Takes a token from {@code bucket}, refilled at {@code perSecond} up to {@code burst}. */
    public CompletionStage<Decision> take(String bucket, double perSecond, int burst) {
        long now = System.nanoTime();
        Lease lease = leases.computeIfAbsent(bucket, b -> new Lease());
        int want = (int) Math.max(1, Math.min(MAX_LEASE, Math.min(perSecond / 10, burst / 10.0)));
        boolean taken = false;
        boolean refill = false;
        synchronized (lease) {
            if (lease.tokens > 0 && now - lease.until < 0) {
                lease.tokens--;
                taken = true;
                // half spent: the next lease is asked for now, so a steady stream never waits for Redis
                if (lease.tokens <= want / 2 && !lease.refilling && now - skipUntil >= 0) {
                    lease.refilling = true;
                    refill = true;
                }
            }
        }
        if (taken) {
            if (refill) {
                refillAhead(lease, bucket, perSecond, burst, want);
            }
            return CompletableFuture.completedFuture(Decision.TAKEN);
        }
        if (now - skipUntil < 0) {
            return CompletableFuture.completedFuture(Decision.TAKEN);
        }
        CompletableFuture<List<Object>> answer;
        try {
            answer = ask(bucket, perSecond, burst, want);
        } catch (RuntimeException e) {
            return CompletableFuture.completedFuture(failOpen(e));
        }
        return answer.orTimeout(REDIS_WAIT.toMillis(), TimeUnit.MILLISECONDS).handle((result, e) -> {
            if (e != null) {
                return failOpen(e);
            }
            long granted = (Long) result.get(0);
            if (granted == 0) {
                return new Decision(false, Duration.ofMillis((Long) result.get(1)));
            }
            // one for this request; the rest for the next ones on this node (added: requests that
            // missed the lease at once each brought some)
            add(lease, granted - 1);
            return Decision.TAKEN;
        });
    }

    /** Asks Redis for the next lease while this one still has tokens; nothing waits for the answer. */
    private void refillAhead(Lease lease, String bucket, double perSecond, int burst, int want) {
        CompletableFuture<List<Object>> answer;
        try {
            answer = ask(bucket, perSecond, burst, want);
        } catch (RuntimeException e) {
            synchronized (lease) {
                lease.refilling = false;
            }
            failOpen(e);
            return;
        }
        answer.orTimeout(REDIS_WAIT.toMillis(), TimeUnit.MILLISECONDS).whenComplete((result, e) -> {
            synchronized (lease) {
                lease.refilling = false;
            }
            if (e != null) {
                failOpen(e);
            } else {
                // none granted: the bucket is empty, and requests find out once this lease is spent
                add(lease, (Long) result.get(0));
            }
        });
    }

    /** The tokens of the bucket this node holds and may still spend (for monitoring and tests). */
    int leased(String bucket) {
        Lease lease = leases.get(bucket);
        if (lease == null) {
            return 0;
        }
        synchronized (lease) {
            return System.nanoTime() - lease.until < 0 ? lease.tokens : 0;
        }
    }

    /** Up to {@code want} tokens of the bucket, from Redis. */
    private CompletableFuture<List<Object>> ask(String bucket, double perSecond, int burst, int want) {
        return script.run(redis, new String[] {"herald:{rl:" + bucket + "}"},
                new String[] {Double.toString(perSecond), Integer.toString(burst), Integer.toString(want)});
    }

    private static void add(Lease lease, long tokens) {
        if (tokens <= 0) {
            return;
        }
        synchronized (lease) {
            long at = System.nanoTime();
            lease.tokens = (at - lease.until < 0 ? lease.tokens : 0) + (int) tokens;
            lease.until = at + LEASE.toNanos();
        }
    }

    /** Forgets leases that ran out (called now and then, so a node's map holds only busy buckets). */
    @io.micronaut.scheduling.annotation.Scheduled(fixedDelay = "1m")
    void forgetExpired() {
        long now = System.nanoTime();
        leases.entrySet().removeIf(e -> {
            synchronized (e.getValue()) {
                return now - e.getValue().until > 0;
            }
        });
    }

    private Decision failOpen(Throwable e) {
        long now = System.nanoTime();
        skipUntil = now + SKIP_AFTER_FAILURE.toNanos();
        if (warnings.due()) {
            LOG.warn("Rate limits not applied while Redis does not answer: {}", RedisScript.unwrap(e).toString());
        }
        return Decision.TAKEN;
    }
}
