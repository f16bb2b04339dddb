package dev.herald.apps;

import dev.herald.auth.SecretBox;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.herald.api.JsonBodies;
import io.micronaut.data.jdbc.runtime.JdbcOperations;
import io.micronaut.transaction.annotation.Transactional;
import jakarta.inject.Singleton;

import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Types;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * Apps in PostgreSQL. The document is kept as sent, except that its secret fields ({@link #SECRETS}) are
 * sealed with the {@link SecretBox} (AES-GCM under the master key) before they reach the database and
 * opened when read; it never leaves this package except as an {@link AppView} (which has no secret
 * fields) or to the gateway clients.
 */
@Singleton
public class AppStore {

    private static final String[] BLOCKS = {"apns", "fcm", "email", "webhook", "limits"};
    /** The secret field of each block that has one. */
    static final Map<String, String> SECRETS = Map.of("apns", "privateKey", "fcm", "serviceAccount", "webhook", "secret");

    private final JdbcOperations jdbc;
    private final ObjectMapper mapper;
    private final SecretBox box;

    AppStore(JdbcOperations jdbc, JsonBodies bodies, SecretBox box) {
        this.jdbc = jdbc;
        this.mapper = bodies.mapper();
        this.box = box;
    }

    /** An app as stored: {@code document} holds {@code id, name, apns?, fcm?, email?, webhook?, syncBadges?}. */
    public record StoredApp(ObjectNode document, Instant createdAt, Instant updatedAt) {
        public String id() {
            return document.path("id").asText();
        }
    }

    /** Inserts a new app; answers empty when the id is taken. */
    @Transactional
    public Optional<StoredApp> create(ObjectNode document) {
        return jdbc.prepareStatement("""
                INSERT INTO apps (id, name, apns, fcm, email, webhook, limits, sync_badges) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (id) DO NOTHING RETURNING created_at, updated_at""", ps -> {
            ps.setString(1, document.path("id").asText());
            bind(ps, 2, document);
            try (ResultSet rs = ps.executeQuery()) {
                return rs.next()
                        ? Optional.of(new StoredApp(document, rs.getTimestamp(1).toInstant(), rs.getTimestamp(2).toInstant()))
                        : Optional.empty();
            }
        });
    }

    @Transactional
    public Optional<StoredApp> find(String id) {
        return jdbc.prepareStatement("SELECT id, name, apns, fcm, email, webhook, limits, sync_badges, created_at, updated_at"
                + " FROM apps WHERE id = ?", ps -> {
            ps.setString(1, id);
            return read(ps).stream().findFirst();
        });
    }

    @Transactional
    public List<StoredApp> list(String after, int limit) {
        return jdbc.prepareStatement("SELECT id, name, apns, fcm, email, webhook, limits, sync_badges, created_at, updated_at"
                + " FROM apps WHERE id > ? ORDER BY id LIMIT ?", ps -> {
            ps.setString(1, after == null ? "" : after);
            ps.setInt(2, limit);
            return read(ps);
        });
    }

    /** Replaces the app's document; answers the stored app. */
    @Transactional
    public StoredApp replace(ObjectNode document) {
        return jdbc.prepareStatement("""
                UPDATE apps SET name = ?, apns = ?, fcm = ?, email = ?, webhook = ?, limits = ?, sync_badges = ?, updated_at = now()
                WHERE id = ? RETURNING created_at, updated_at""", ps -> {
            bind(ps, 1, document);
            ps.setString(8, document.path("id").asText());
            try (ResultSet rs = ps.executeQuery()) {
                rs.next();
                return new StoredApp(document, rs.getTimestamp(1).toInstant(), rs.getTimestamp(2).toInstant());
            }
        });
    }

    private void bind(PreparedStatement ps, int first, ObjectNode document) throws SQLException {
        ps.setString(first, document.path("name").asText());
        for (int i = 0; i < BLOCKS.length; i++) {
            var block = document.get(BLOCKS[i]);
            ps.setObject(first + 1 + i, block == null || block.isNull() ? null
                    : write(sealed(document.path("id").asText(), BLOCKS[i], block)), Types.OTHER);
        }
        ps.setBoolean(first + 1 + BLOCKS.length, document.path("syncBadges").asBoolean(false));
    }

    private List<StoredApp> read(PreparedStatement ps) throws SQLException {
        List<StoredApp> out = new ArrayList<>();
        try (ResultSet rs = ps.executeQuery()) {
            while (rs.next()) {
                ObjectNode document = mapper.createObjectNode();
                document.put("id", rs.getString(1));
                document.put("name", rs.getString(2));
                for (int i = 0; i < BLOCKS.length; i++) {
                    String json = rs.getString(3 + i);
                    if (json != null) {
                        document.set(BLOCKS[i], opened(rs.getString(1), BLOCKS[i], parse(json)));
                    }
                }
                document.put("syncBadges", rs.getBoolean(8));
                out.add(new StoredApp(document, rs.getTimestamp(9).toInstant(), rs.getTimestamp(10).toInstant()));
            }
        }
        return out;
    }

    /** The block with its secret field sealed (a JSON value is sealed as its text). */
    private com.fasterxml.jackson.databind.JsonNode sealed(String appId, String name, com.fasterxml.jackson.databind.JsonNode block) {
        String field = SECRETS.get(name);
        com.fasterxml.jackson.databind.JsonNode secret = field == null ? null : block.get(field);
        if (secret == null || secret.isNull() || !(block instanceof ObjectNode object)) {
            return block;
        }
        String text = secret.isTextual() ? secret.asText() : write(secret);
        ObjectNode copy = object.deepCopy();
        copy.put(field, box.seal(text, context(appId, name, field)));
        return copy;
    }

    /** The block as stored, its secret field opened. */
    private com.fasterxml.jackson.databind.JsonNode opened(String appId, String name, com.fasterxml.jackson.databind.JsonNode block) {
        String field = SECRETS.get(name);
        com.fasterxml.jackson.databind.JsonNode secret = field == null ? null : block.get(field);
        if (secret == null || !secret.isTextual() || !SecretBox.isSealed(secret.asText())
                || !(block instanceof ObjectNode object)) {
            return block; // no secret, or one stored before sealing existed (sealed again by rotation)
        }
        String text = box.open(secret.asText(), context(appId, name, field));
        if ("serviceAccount".equals(field)) {
            object.set(field, parse(text));
        } else {
            object.put(field, text);
        }
        return object;
    }

    static String context(String appId, String block, String field) {
        return "app/" + appId + "/" + block + "." + field;
    }

    /**
     * Seals again, under the current master key, every app secret sealed under an older one or stored
     * before sealing existed; answers how many apps it rewrote.
     */
    @Transactional
    public int sealAgain() {
        List<String> stale = new ArrayList<>();
        jdbc.prepareStatement("SELECT id, apns->>'privateKey', fcm->>'serviceAccount', webhook->>'secret' FROM apps", ps -> {
            try (ResultSet rs = ps.executeQuery()) {
                while (rs.next()) {
                    for (int i = 2; i <= 4; i++) {
                        String value = rs.getString(i);
                        if (value != null && !box.isCurrent(value)) {
                            stale.add(rs.getString(1));
                            break;
                        }
                    }
                }
            }
            return null;
        });
        for (String id : stale) {
            // read (opened with whichever key sealed it) and written (sealed with the current one)
            find(id).ifPresent(app -> replaceSealingAgain(app.document()));
        }
        return stale.size();
    }

    private void replaceSealingAgain(ObjectNode document) {
        jdbc.prepareStatement("UPDATE apps SET name = ?, apns = ?, fcm = ?, email = ?, webhook = ?, limits = ?, sync_badges = ? WHERE id = ?",
                ps -> {
                    bind(ps, 1, document);
                    ps.setString(8, document.path("id").asText());
                    return ps.executeUpdate();
                });
    }

    private String write(Object value) {
        try {
            return mapper.writeValueAsString(value);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }

    private com.fasterxml.jackson.databind.JsonNode parse(String json) {
        try {
            return mapper.readTree(json);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException("apps row holds JSON PostgreSQL accepted", e);
        }
    }
}
