package dev.herald.preferences;

import com.github.benmanes.caffeine.cache.CacheLoader;
import com.github.benmanes.caffeine.cache.Caffeine;
import com.github.benmanes.caffeine.cache.LoadingCache;
import io.micronaut.transaction.TransactionOperations;
import jakarta.inject.Singleton;

import java.sql.Connection;
import java.time.Duration;
import java.util.Collection;
import java.util.HashMap;
import java.util.Map;
import java.util.Set;

/**
 * Users' preferences for the push path of device and tag targets, read in bulk (one query for a batch
 * of pushes) and kept for {@link #FRESHNESS}: a change made on another node applies within that time,
 * one made on this node at once. Users who never saved any get the defaults.
 */
@Singleton
public class PreferenceCache {

    static final Duration FRESHNESS = Duration.ofSeconds(10);

    private final LoadingCache<String, Preferences> cache;

    PreferenceCache(PreferenceStore store, TransactionOperations<Connection> transactions) {
        this.cache = Caffeine.newBuilder().expireAfterWrite(FRESHNESS).maximumSize(200_000)
                .build(new CacheLoader<>() {
                    @Override
                    public Preferences load(String userId) {
                        return loadAll(Set.of(userId)).get(userId);
                    }

                    @Override
                    public Map<String, Preferences> loadAll(Set<? extends String> userIds) {
                        Map<String, Preferences> found = transactions.executeRead(s -> store.findAll(java.util.List.copyOf(userIds)));
                        Map<String, Preferences> all = new HashMap<>();
                        for (String user : userIds) {
                            all.put(user, found.getOrDefault(user, Preferences.DEFAULTS));
                        }
                        return all;
                    }
                });
    }

    /** Loads, in one query, those of the users not cached. */
    public void prefetch(Collection<String> userIds) {
        cache.getAll(userIds);
    }

    public Preferences get(String userId) {
        return cache.get(userId);
    }

    public void invalidate(String userId) {
        cache.invalidate(userId);
    }
}
