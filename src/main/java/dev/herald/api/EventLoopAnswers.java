package dev.herald.api;

import io.micronaut.core.annotation.Nullable;
import io.micronaut.http.HttpRequest;
import io.micronaut.http.server.netty.NettyHttpRequest;

import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Executor;
import java.util.concurrent.RejectedExecutionException;
import java.util.function.IntConsumer;
import java.util.function.IntFunction;

/**
 * Answers from a group-commit writer go back on each request's own event loop: the answer is built
 * and written there, with no pool thread in between (one hop fewer per request, and one task per
 * event loop and batch rather than one per request).
 */
public final class EventLoopAnswers {

    private EventLoopAnswers() {
    }

    /** The event loop serving {@code request}, or null when it did not come through Netty. */
    public static @Nullable Executor loopOf(HttpRequest<?> request) {
        return request instanceof NettyHttpRequest<?> netty ? netty.getChannelHandlerContext().executor() : null;
    }

    /**
     * Calls {@code complete} for each of {@code count} answers on its executor ({@code executorOf},
     * or {@code fallback} where that is null), one task per distinct executor, in order within it. An
     * executor that is shutting down gets its answers completed here rather than never.
     */
    public static void completeEach(int count, IntFunction<@Nullable Executor> executorOf, Executor fallback,
                                    IntConsumer complete) {
        Map<Executor, List<Integer>> byExecutor = new IdentityHashMap<>();
        for (int i = 0; i < count; i++) {
            Executor executor = executorOf.apply(i);
            byExecutor.computeIfAbsent(executor == null ? fallback : executor, e -> new ArrayList<>()).add(i);
        }
        byExecutor.forEach((executor, indexes) -> {
            Runnable task = () -> indexes.forEach(complete::accept);
            try {
                executor.execute(task);
            } catch (RejectedExecutionException shuttingDown) {
                task.run();
            }
        });
    }
}
