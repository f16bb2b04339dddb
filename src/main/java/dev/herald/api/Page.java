package dev.herald.api;

import io.micronaut.core.annotation.Nullable;
import io.micronaut.serde.annotation.Serdeable;

import java.util.List;
import java.util.function.Function;

/** A page of a list endpoint: {@code {items, nextCursor}}; {@code nextCursor} is null on the last page. */
@Serdeable
public record Page<T>(List<T> items, @Nullable String nextCursor) {

    /**
     * Builds a page from up to {@code limit + 1} rows fetched in order: the extra row only tells that
     * another page follows, whose cursor is made from the last row shown.
     */
    public static <T> Page<T> of(List<T> rows, int limit, Function<T, String> position) {
        if (rows.size() <= limit) {
            return new Page<>(rows, null);
        }
        List<T> shown = rows.subList(0, limit);
        return new Page<>(List.copyOf(shown), Cursors.encode(position.apply(shown.get(limit - 1))));
    }
}
