package dev.herald.inbox;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.herald.api.JsonBodies;
import io.micronaut.core.annotation.Nullable;
import io.micronaut.data.jdbc.runtime.JdbcOperations;
import jakarta.inject.Singleton;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Timestamp;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * Users' inbox items in PostgreSQL. Every method joins the caller's transaction. Items list unread
 * first, then newest ({@code (read_at IS NOT NULL), id DESC}), per app or across all apps.
 */
@Singleton
public class InboxStore {

    private static final com.fasterxml.jackson.core.type.TypeReference<Map<String, String>> STRING_MAP =
            new com.fasterxml.jackson.core.type.TypeReference<>() { };

    private final JdbcOperations jdbc;
    private final ObjectMapper mapper;

    InboxStore(JdbcOperations jdbc, JsonBodies bodies) {
        this.jdbc = jdbc;
        this.mapper = bodies.mapper();
    }

    /**
     * An item to store: one notification in one user's inbox, in their locale; {@code id} and
     * {@code createdAt} are given when a live event already showed them (else drawn and now).
     */
    public record NewItem(String userId, String appId, String notificationId, @Nullable String category, String type,
                          @Nullable String title, @Nullable String body, @Nullable String link, Map<String, String> data,
                          @Nullable Long id, @Nullable Instant createdAt) {
    }

    /** An item as stored. */
    public record Item(long id, String userId, String appId, String notificationId, @Nullable String category, String type,
                       @Nullable String title, @Nullable String body, @Nullable String link, Map<String, String> data,
                       @Nullable Instant readAt, Instant createdAt) {
    }

    /** Inserts the items (a notification routed again after a crash adds none twice); answers those inserted. */
    public List<Item> insert(List<NewItem> items, Instant now) {
        if (items.isEmpty()) {
            return List.of();
        }
        int n = items.size();
        String[][] columns = new String[9][n];
        Long[] ids = new Long[n];
        Timestamp[] created = new Timestamp[n];
        for (int i = 0; i < n; i++) {
            NewItem it = items.get(i);
            ids[i] = it.id();
            created[i] = it.createdAt() == null ? null : Timestamp.from(it.createdAt());
            columns[0][i] = it.userId();
            columns[1][i] = it.appId();
            columns[2][i] = it.notificationId();
            columns[3][i] = it.category();
            columns[4][i] = it.type();
            columns[5][i] = it.title();
            columns[6][i] = it.body();
            columns[7][i] = it.link();
            columns[8][i] = json(it.data());
        }
        return jdbc.prepareStatement("""
                INSERT INTO inbox_items (id, user_id, app_id, notification_id, category, type, title, body, link, data, created_at)
                SELECT coalesce(u.id, nextval('inbox_items_id_seq')), u.user_id, u.app_id, u.notification_id, u.category,
                       u.type, u.title, u.body, u.link, u.data::jsonb, coalesce(u.created_at, ?)
                FROM unnest(?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[],
                            ?::bigint[], ?::timestamptz[])
                     AS u(user_id, app_id, notification_id, category, type, title, body, link, data, id, created_at)
                ON CONFLICT (notification_id, user_id) DO NOTHING
                RETURNING""" + " " + COLUMNS, ps -> {
            ps.setTimestamp(1, Timestamp.from(now));
            for (int c = 0; c < 9; c++) {
                ps.setArray(c + 2, ps.getConnection().createArrayOf("text", columns[c]));
            }
            ps.setArray(11, ps.getConnection().createArrayOf("bigint", ids));
            ps.setArray(12, ps.getConnection().createArrayOf("timestamptz", created));
            return items(ps.executeQuery());
        });
    }

    /**
     * A page of the user's items after {@code after} ({@code {readFlag, id}}: 0 unread / 1 read, and the
     * last id seen), for one app or all ({@code appId} null).
     */
    public List<Item> page(String userId, @Nullable String appId, boolean unreadOnly, @Nullable long[] after, int limit) {
        StringBuilder sql = new StringBuilder("SELECT " + COLUMNS + " FROM inbox_items WHERE user_id = ?");
        if (appId != null) {
            sql.append(" AND app_id = ?");
        }
        if (unreadOnly) {
            sql.append(" AND read_at IS NULL");
        }
        if (after != null) {
            sql.append(" AND ((read_at IS NOT NULL)::int > ? OR ((read_at IS NOT NULL)::int = ? AND id < ?))");
        }
        sql.append(" ORDER BY (read_at IS NOT NULL), id DESC LIMIT ?");
        return jdbc.prepareStatement(sql.toString(), ps -> {
            int i = 1;
            ps.setString(i++, userId);
            if (appId != null) {
                ps.setString(i++, appId);
            }
            if (after != null) {
                ps.setInt(i++, (int) after[0]);
                ps.setInt(i++, (int) after[0]);
                ps.setLong(i++, after[1]);
            }
            ps.setInt(i, limit);
            return items(ps.executeQuery());
        });
    }

    /**
     * What a stream reconnecting after item {@code afterId} missed, oldest first: the user's items (all
     * apps) with a larger id, and those stored up to 5 s before it with a smaller one (ids are drawn
     * before their transactions commit, so a smaller id can become visible after a larger one was
     * streamed; a client keeps the ids it has seen and skips repeats).
     */
    public List<Item> after(String userId, long afterId, int limit) {
        return jdbc.prepareStatement("SELECT " + COLUMNS + """
                 FROM inbox_items WHERE user_id = ? AND id <> ? AND (id > ? OR created_at >=
                    (SELECT created_at - interval '5 seconds' FROM inbox_items WHERE id = ? AND user_id = ?))
                ORDER BY id LIMIT ?""", ps -> {
            ps.setString(1, userId);
            ps.setLong(2, afterId);
            ps.setLong(3, afterId);
            ps.setLong(4, afterId);
            ps.setString(5, userId);
            ps.setInt(6, limit);
            return items(ps.executeQuery());
        });
    }

    /** Unread items of the app per user, for the users given (users with none are left out). */
    public Map<String, Long> unreadCounts(List<String> userIds, String appId) {
        return jdbc.prepareStatement("""
                SELECT user_id, count(*) FROM inbox_items
                WHERE user_id = ANY(?) AND app_id = ? AND read_at IS NULL GROUP BY user_id""", ps -> {
            ps.setArray(1, ps.getConnection().createArrayOf("text", userIds.toArray()));
            ps.setString(2, appId);
            Map<String, Long> counts = new java.util.HashMap<>();
            try (ResultSet rs = ps.executeQuery()) {
                while (rs.next()) {
                    counts.put(rs.getString(1), rs.getLong(2));
                }
            }
            return counts;
        });
    }

    /** Unread items per user (all apps), for the users given. */
    public Map<String, Long> unreadCounts(List<String> userIds) {
        return jdbc.prepareStatement(
                "SELECT user_id, count(*) FROM inbox_items WHERE user_id = ANY(?) AND read_at IS NULL GROUP BY user_id", ps -> {
                    ps.setArray(1, ps.getConnection().createArrayOf("text", userIds.toArray()));
                    Map<String, Long> counts = new java.util.HashMap<>();
                    try (ResultSet rs = ps.executeQuery()) {
                        while (rs.next()) {
                            counts.put(rs.getString(1), rs.getLong(2));
                        }
                    }
                    return counts;
                });
    }

    public long unreadCount(String userId, @Nullable String appId) {
        String sql = "SELECT count(*) FROM inbox_items WHERE user_id = ? AND read_at IS NULL"
                + (appId == null ? "" : " AND app_id = ?");
        return jdbc.prepareStatement(sql, ps -> {
            ps.setString(1, userId);
            if (appId != null) {
                ps.setString(2, appId);
            }
            try (ResultSet rs = ps.executeQuery()) {
                rs.next();
                return rs.getLong(1);
            }
        });
    }

    /** Marks the user's item read (keeping the first read time); answers its app, or null when the user has no such item. */
    @Nullable
    public String markRead(String userId, long id, Instant now) {
        return jdbc.prepareStatement("""
                UPDATE inbox_items SET read_at = coalesce(read_at, ?) WHERE user_id = ? AND id = ? RETURNING app_id""", ps -> {
            ps.setTimestamp(1, Timestamp.from(now));
            ps.setString(2, userId);
            ps.setLong(3, id);
            try (ResultSet rs = ps.executeQuery()) {
                return rs.next() ? rs.getString(1) : null;
            }
        });
    }

    /** Marks every unread item of the user (of one app, or all) read; answers how many, by app. */
    public Map<String, Integer> readAll(String userId, @Nullable String appId, Instant now) {
        String sql = "WITH marked AS (UPDATE inbox_items SET read_at = ? WHERE user_id = ? AND read_at IS NULL"
                + (appId == null ? "" : " AND app_id = ?") + " RETURNING app_id) SELECT app_id, count(*) FROM marked GROUP BY app_id";
        return jdbc.prepareStatement(sql, ps -> {
            ps.setTimestamp(1, Timestamp.from(now));
            ps.setString(2, userId);
            if (appId != null) {
                ps.setString(3, appId);
            }
            Map<String, Integer> byApp = new java.util.TreeMap<>();
            try (ResultSet rs = ps.executeQuery()) {
                while (rs.next()) {
                    byApp.put(rs.getString(1), rs.getInt(2));
                }
            }
            return byApp;
        });
    }

    /** Deletes the user's item; answers its app, or null when the user has no such item. */
    @Nullable
    public String delete(String userId, long id) {
        return jdbc.prepareStatement("DELETE FROM inbox_items WHERE user_id = ? AND id = ? RETURNING app_id", ps -> {
            ps.setString(1, userId);
            ps.setLong(2, id);
            try (ResultSet rs = ps.executeQuery()) {
                return rs.next() ? rs.getString(1) : null;
            }
        });
    }

    private static final String COLUMNS =
            "id, user_id, app_id, notification_id, category, type, title, body, link, data, read_at, created_at";

    private List<Item> items(ResultSet rs) throws SQLException {
        List<Item> items = new ArrayList<>();
        try (rs) {
            while (rs.next()) {
                Timestamp read = rs.getTimestamp(11);
                items.add(new Item(rs.getLong(1), rs.getString(2), rs.getString(3), rs.getString(4), rs.getString(5),
                        rs.getString(6), rs.getString(7), rs.getString(8), rs.getString(9), parse(rs.getString(10)),
                        read == null ? null : read.toInstant(), rs.getTimestamp(12).toInstant()));
            }
        }
        return items;
    }

    private String json(Map<String, String> data) {
        try {
            return mapper.writeValueAsString(data);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private Map<String, String> parse(String json) {
        try {
            return mapper.readValue(json, STRING_MAP);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
