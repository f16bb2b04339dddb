package dev.herald.live;

import io.micronaut.http.HttpRequest;
import io.micronaut.security.token.reader.TokenReader;
import jakarta.inject.Singleton;

import java.util.Optional;

/**
 * Reads a user token from {@code ?access_token=} on the live stream only: browsers' {@code EventSource}
 * cannot send an {@code Authorization} header. The header, when present, wins (it is read first).
 */
@Singleton
class QueryTokenReader implements TokenReader<HttpRequest<?>> {

    static final String PATH = "/v1/inbox/stream";

    @Override
    public Optional<String> findToken(HttpRequest<?> request) {
        if (!PATH.equals(request.getPath())) {
            return Optional.empty();
        }
        return request.getParameters().getFirst("access_token").filter(t -> !t.isBlank());
    }

    @Override
    public int getOrder() {
        return LOWEST_PRECEDENCE;
    }
}
