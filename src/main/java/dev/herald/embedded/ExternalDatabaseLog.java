package dev.herald.embedded;

import io.micronaut.context.annotation.Context;
import io.micronaut.context.annotation.Value;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Says in one startup line which PostgreSQL Herald uses when it is an external one (the embedded
 * server logs its own line when it starts). Credentials never reach the log.
 */
@Context
final class ExternalDatabaseLog {

    private static final Logger LOG = LoggerFactory.getLogger(ExternalDatabaseLog.class);

    ExternalDatabaseLog(@Value("${database.url:}") String configuredUrl) {
        if (!configuredUrl.isBlank()) {
            LOG.info("PostgreSQL: external, {}", withoutCredentials(configuredUrl));
        }
    }

    /** The JDBC URL without its query string (where a password may be) and without user info. */
    static String withoutCredentials(String url) {
        int query = url.indexOf('?');
        String base = query < 0 ? url : url.substring(0, query);
        int at = base.indexOf('@');
        return at < 0 ? base : "jdbc:postgresql://" + base.substring(at + 1);
    }
}
