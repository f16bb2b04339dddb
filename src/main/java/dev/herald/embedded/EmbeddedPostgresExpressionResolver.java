package dev.herald.embedded;

import io.micronaut.context.env.PropertyExpressionResolver;
import io.micronaut.core.convert.ConversionService;
import io.micronaut.core.value.PropertyResolver;

import java.nio.file.Path;
import java.util.Optional;

/**
 * Resolves {@code ${herald.database.url|user|password}}, which application.yml gives the datasource:
 * {@code DATABASE_URL}, {@code DATABASE_USER} and {@code DATABASE_PASSWORD} when the URL is set
 * (nothing is started), else an embedded PostgreSQL started under {@code herald.data-dir} before
 * the connection pool is built. Loaded through {@code META-INF/services}.
 */
public final class EmbeddedPostgresExpressionResolver implements PropertyExpressionResolver {

    private static final String PREFIX = "herald.database.";

    @Override
    public <T> Optional<T> resolve(PropertyResolver properties, ConversionService conversion, String expression,
                                   Class<T> requiredType) {
        if (!expression.startsWith(PREFIX)) {
            return Optional.empty();
        }
        String part = expression.substring(PREFIX.length());
        Optional<String> configuredUrl = properties.getProperty("database.url", String.class).filter(u -> !u.isBlank());
        String value;
        if (configuredUrl.isPresent()) {
            value = switch (part) {
                case "url" -> configuredUrl.get();
                case "user" -> properties.getProperty("database.user", String.class).orElse("");
                case "password" -> properties.getProperty("database.password", String.class).orElse("");
                default -> null;
            };
        } else {
            String dataDir = properties.getProperty("herald.data-dir", String.class).orElse("./herald-data");
            EmbeddedServers.PostgresEndpoint endpoint = EmbeddedServers.postgres(Path.of(dataDir));
            value = switch (part) {
                case "url" -> endpoint.jdbcUrl();
                case "user" -> endpoint.user();
                case "password" -> endpoint.password();
                default -> null;
            };
        }
        return value == null ? Optional.empty() : conversion.convert(value, requiredType);
    }
}
