package dev.herald.embedded;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Optional;

/**
 * Stops a server that a previous Herald process started on the same data folder and left running
 * when it was killed without a chance to clean up. The pid comes from the server's own pid file; a
 * process is only stopped when its command line names the expected server.
 */
final class StaleServer {

    private static final Logger LOG = LoggerFactory.getLogger(StaleServer.class);

    private StaleServer() {
    }

    static void stop(Path pidFile, String expectedCommand, Duration grace) throws IOException {
        if (!Files.isReadable(pidFile)) {
            return;
        }
        List<String> lines = Files.readAllLines(pidFile);
        if (lines.isEmpty()) {
            return;
        }
        long pid;
        try {
            pid = Long.parseLong(lines.get(0).trim());
        } catch (NumberFormatException e) {
            return;
        }
        Optional<ProcessHandle> process = ProcessHandle.of(pid).filter(ProcessHandle::isAlive)
                .filter(p -> p.info().command().map(c -> c.contains(expectedCommand)).orElse(false));
        if (process.isEmpty()) {
            return;
        }
        LOG.info("Stopping a {} server (pid {}) left running by an earlier process on {}", expectedCommand, pid,
                pidFile.getParent());
        ProcessHandle handle = process.get();
        handle.destroy();
        try {
            handle.onExit().get(grace.toMillis(), java.util.concurrent.TimeUnit.MILLISECONDS);
        } catch (Exception e) {
            handle.destroyForcibly();
            try {
                handle.onExit().get(5, java.util.concurrent.TimeUnit.SECONDS);
            } catch (Exception ignored) {
                // reported by the server start that follows, if it matters
            }
        }
    }
}
