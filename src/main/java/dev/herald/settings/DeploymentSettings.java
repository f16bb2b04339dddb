package dev.herald.settings;

import io.micronaut.data.jdbc.runtime.JdbcOperations;
import io.micronaut.transaction.annotation.Transactional;
import jakarta.inject.Singleton;

import java.sql.ResultSet;
import java.util.function.Supplier;

/**
 * Values generated once per deployment and shared by every node through PostgreSQL (the admin key's
 * hash, the JWT secret). Safe when several nodes start at once: the first insert wins and every node
 * reads that value.
 */
@Singleton
public class DeploymentSettings {

    private final JdbcOperations jdbc;

    DeploymentSettings(JdbcOperations jdbc) {
        this.jdbc = jdbc;
    }

    /** A stored value, or the generated one if none was stored yet; {@code created} tells which. */
    public record Setting(String value, boolean created) {
    }

    @Transactional
    public Setting getOrCreate(String name, Supplier<String> generator) {
        String candidate = generator.get();
        String inserted = jdbc.prepareStatement(
                "INSERT INTO settings (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING RETURNING value",
                ps -> {
                    ps.setString(1, name);
                    ps.setString(2, candidate);
                    try (ResultSet rs = ps.executeQuery()) {
                        return rs.next() ? rs.getString(1) : null;
                    }
                });
        if (inserted != null) {
            return new Setting(inserted, true);
        }
        return new Setting(jdbc.prepareStatement("SELECT value FROM settings WHERE name = ?", ps -> {
            ps.setString(1, name);
            try (ResultSet rs = ps.executeQuery()) {
                rs.next();
                return rs.getString(1);
            }
        }), false);
    }

    /** Replaces a stored value (the same value sealed again under a new key, say). */
    @Transactional
    public void replace(String name, String value) {
        jdbc.prepareStatement("UPDATE settings SET value = ? WHERE name = ?", ps -> {
            ps.setString(1, value);
            ps.setString(2, name);
            return ps.executeUpdate();
        });
    }
}
