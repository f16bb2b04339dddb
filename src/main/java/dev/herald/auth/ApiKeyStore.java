package dev.herald.auth;

import io.micronaut.data.jdbc.runtime.JdbcOperations;
import io.micronaut.transaction.annotation.Transactional;
import jakarta.inject.Singleton;

import java.sql.Array;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Timestamp;
import java.time.Instant;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.function.Consumer;

/** App keys in PostgreSQL: only their SHA-256 is stored; the key itself exists once, in the create answer. */
@Singleton
public class ApiKeyStore {

    public static final String LIVE_PREFIX = "hk_live_";
    public static final String TEST_PREFIX = "hk_test_";
    private static final int RANDOM_CHARS = 40; // 40 base62 characters: 238 bits

    private final JdbcOperations jdbc;
    private final List<Consumer<String>> revokeListeners = new CopyOnWriteArrayList<>();

    ApiKeyStore(JdbcOperations jdbc) {
        this.jdbc = jdbc;
    }

    /** A key as listed: never its secret, only a prefix to recognise it by. */
    public record KeyInfo(String id, String appId, String name, boolean test, Set<Scope> scopes, String prefix,
                          Instant createdAt, Instant revokedAt) {
    }

    /** A key just created: the only moment {@code key} is known. */
    public record CreatedKey(KeyInfo info, String key) {
    }

    @Transactional
    public CreatedKey create(String appId, String name, boolean test, Set<Scope> scopes) {
        String key = (test ? TEST_PREFIX : LIVE_PREFIX) + Secrets.random(RANDOM_CHARS);
        String id = "key_" + Secrets.random(16);
        String prefix = key.substring(0, 12);
        Instant createdAt = jdbc.prepareStatement("""
                INSERT INTO api_keys (id, app_id, name, mode, scopes, key_hash, key_prefix)
                VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING created_at""", ps -> {
            ps.setString(1, id);
            ps.setString(2, appId);
            ps.setString(3, name);
            ps.setString(4, test ? "test" : "live");
            ps.setArray(5, ps.getConnection().createArrayOf("text", scopes.stream().map(Scope::wire).toArray()));
            ps.setString(6, Secrets.sha256(key));
            ps.setString(7, prefix);
            try (ResultSet rs = ps.executeQuery()) {
                rs.next();
                return rs.getTimestamp(1).toInstant();
            }
        });
        return new CreatedKey(new KeyInfo(id, appId, name, test, scopes, prefix, createdAt, null), key);
    }

    @Transactional
    public Optional<Caller.AppKey> findActive(String keyHash) {
        return jdbc.prepareStatement(
                "SELECT k.id, k.app_id, k.mode, k.scopes, (a.limits->>'keyPerSecond')::float8, (a.limits->>'keyBurst')::int"
                        + " FROM api_keys k JOIN apps a ON a.id = k.app_id WHERE k.key_hash = ? AND k.revoked_at IS NULL", ps -> {
                    ps.setString(1, keyHash);
                    try (ResultSet rs = ps.executeQuery()) {
                        if (!rs.next()) {
                            return Optional.empty();
                        }
                        double perSecond = rs.getDouble(5);
                        Double ownRate = rs.wasNull() ? null : perSecond;
                        int burst = rs.getInt(6);
                        Integer ownBurst = rs.wasNull() ? null : burst;
                        return Optional.of(new Caller.AppKey(rs.getString(1), rs.getString(2),
                                "test".equals(rs.getString(3)), scopes(rs.getArray(4)), ownRate, ownBurst));
                    }
                });
    }

    /** Keys of an app, oldest first, after the key id {@code after} (keyset paging). */
    @Transactional
    public List<KeyInfo> list(String appId, String after, int limit) {
        return jdbc.prepareStatement("""
                SELECT id, app_id, name, mode, scopes, key_prefix, created_at, revoked_at FROM api_keys
                WHERE app_id = ? AND id > ? ORDER BY id LIMIT ?""", ps -> {
            ps.setString(1, appId);
            ps.setString(2, after == null ? "" : after);
            ps.setInt(3, limit);
            List<KeyInfo> out = new ArrayList<>();
            try (ResultSet rs = ps.executeQuery()) {
                while (rs.next()) {
                    Timestamp revoked = rs.getTimestamp(8);
                    out.add(new KeyInfo(rs.getString(1), rs.getString(2), rs.getString(3),
                            "test".equals(rs.getString(4)), scopes(rs.getArray(5)), rs.getString(6),
                            rs.getTimestamp(7).toInstant(), revoked == null ? null : revoked.toInstant()));
                }
            }
            return out;
        });
    }

    /** Revokes a key of the app; answers false when the app has no such key. Revoking twice is harmless. */
    @Transactional
    public boolean revoke(String appId, String keyId) {
        String hash = jdbc.prepareStatement("""
                UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())
                WHERE app_id = ? AND id = ? RETURNING key_hash""", ps -> {
            ps.setString(1, appId);
            ps.setString(2, keyId);
            try (ResultSet rs = ps.executeQuery()) {
                return rs.next() ? rs.getString(1) : null;
            }
        });
        if (hash == null) {
            return false;
        }
        revokeListeners.forEach(listener -> listener.accept(hash));
        return true;
    }

    void onRevoke(Consumer<String> listener) {
        revokeListeners.add(listener);
    }

    private static Set<Scope> scopes(Array array) throws SQLException {
        Set<Scope> scopes = EnumSet.noneOf(Scope.class);
        for (Object value : (Object[]) array.getArray()) {
            Scope.fromWire((String) value).ifPresent(scopes::add);
        }
        return scopes;
    }
}
