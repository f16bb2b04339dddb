package dev.herald.preferences;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.herald.api.JsonBodies;
import io.micronaut.data.jdbc.runtime.JdbcOperations;
import io.micronaut.transaction.annotation.Transactional;
import jakarta.inject.Singleton;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.sql.ResultSet;
import java.sql.Timestamp;
import java.time.Instant;
import java.util.Collection;
import java.util.HashMap;
import java.util.Map;

/** Users' preferences in PostgreSQL, one normalized document per user. Methods join the caller's transaction. */
@Singleton
public class PreferenceStore {

    private final JdbcOperations jdbc;
    private final ObjectMapper mapper;

    PreferenceStore(JdbcOperations jdbc, JsonBodies bodies) {
        this.jdbc = jdbc;
        this.mapper = bodies.mapper();
    }

    /** The user's preferences, or the defaults when they never saved any. */
    @Transactional
    public Preferences find(String userId) {
        return findAll(java.util.List.of(userId)).getOrDefault(userId, Preferences.DEFAULTS);
    }

    /** The saved preferences of those of {@code userIds} who have any (the others take the defaults). */
    public Map<String, Preferences> findAll(Collection<String> userIds) {
        return jdbc.prepareStatement("SELECT user_id, document FROM preferences WHERE user_id = ANY(?)", ps -> {
            ps.setArray(1, ps.getConnection().createArrayOf("text", userIds.toArray()));
            Map<String, Preferences> found = new HashMap<>();
            try (ResultSet rs = ps.executeQuery()) {
                while (rs.next()) {
                    found.put(rs.getString(1), Preferences.read(parse(rs.getString(2))));
                }
            }
            return found;
        });
    }

    @Transactional
    public void save(String userId, Preferences preferences, Instant now) {
        jdbc.prepareStatement("""
                INSERT INTO preferences (user_id, document, updated_at) VALUES (?, ?::jsonb, ?)
                ON CONFLICT (user_id) DO UPDATE SET document = excluded.document, updated_at = excluded.updated_at""", ps -> {
            ps.setString(1, userId);
            ps.setString(2, preferences.toJson().toString());
            ps.setTimestamp(3, Timestamp.from(now));
            return ps.executeUpdate();
        });
    }

    private JsonNode parse(String json) {
        try {
            return mapper.readTree(json);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
