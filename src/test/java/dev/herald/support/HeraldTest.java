package dev.herald.support;

import io.micronaut.runtime.server.EmbeddedServer;
import jakarta.inject.Inject;
import org.junit.jupiter.api.BeforeEach;

import java.net.URI;

/**
 * Base of the API tests: a Herald started by {@code @MicronautTest} on a random port, on the same
 * embedded PostgreSQL and Redis the service uses by default (shared by every test class in the JVM).
 */
public abstract class HeraldTest {

    @Inject
    protected EmbeddedServer server;

    protected Api api;
    protected Fixtures fixtures;

    @BeforeEach
    void connect() {
        api = new Api(URI.create(server.getURL().toString() + "/"));
        fixtures = new Fixtures(api);
    }
}
