package dev.herald.apns;

import com.eatthepath.pushy.apns.ApnsClientBuilder;
import io.micronaut.context.annotation.ConfigurationProperties;
import io.micronaut.core.annotation.Nullable;
import io.micronaut.core.bind.annotation.Bindable;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;

/**
 * How Herald reaches APNs ({@code herald.apns.*}); the same for every app, whose own credentials
 * come with each push.
 *
 * @param host        the gateway host; empty means Apple's host for each app's environment (an
 *                    override serves tests, staging and on-premise relays)
 * @param port        the gateway port, 443 unless overridden
 * @param trustedCert a PEM file of the certificate chain to trust instead of the JDK's roots; empty for
 *                    none (Apple's certificates chain to public roots)
 * @param connections HTTP/2 connections per app credential ({@code setConcurrentConnections})
 * @param maxInFlight pushes per app credential with APNs at once; more wait in a queue without a thread
 */
@ConfigurationProperties("herald.apns")
public record ApnsConfiguration(@Nullable String host,
                                @Bindable(defaultValue = "443") int port,
                                @Nullable String trustedCert,
                                @Bindable(defaultValue = "2") int connections,
                                @Bindable(defaultValue = "1000") int maxInFlight) {

    public ApnsConfiguration {
        host = host == null || host.isBlank() ? null : host.strip();
        trustedCert = trustedCert == null || trustedCert.isBlank() ? null : trustedCert.strip();
        if (port < 1 || port > 65_535) {
            throw new IllegalArgumentException("herald.apns.port must be a TCP port (1-65535), was " + port);
        }
        if (connections < 1) {
            throw new IllegalArgumentException("herald.apns.connections must be at least 1, was " + connections);
        }
        if (maxInFlight < 1) {
            throw new IllegalArgumentException("herald.apns.max-in-flight must be at least 1, was " + maxInFlight);
        }
        if (trustedCert != null && !Files.isReadable(Path.of(trustedCert))) {
            throw new IllegalArgumentException("herald.apns.trusted-cert names " + trustedCert
                    + ", which is not a readable file: point it at a PEM certificate chain, or leave it empty to trust the JDK's roots");
        }
    }

    /** The host to connect to for an app in this environment. */
    String hostFor(boolean production) {
        if (host != null) {
            return host;
        }
        return production ? ApnsClientBuilder.PRODUCTION_APNS_HOST : ApnsClientBuilder.DEVELOPMENT_APNS_HOST;
    }

    Optional<Path> trustedCertificate() {
        return Optional.ofNullable(trustedCert).map(Path::of);
    }
}
