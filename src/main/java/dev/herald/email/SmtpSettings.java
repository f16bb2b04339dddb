package dev.herald.email;

import io.micronaut.context.annotation.Value;
import jakarta.inject.Singleton;

/**
 * The deployment's SMTP relay: {@code SMTP_HOST}, {@code SMTP_PORT} (default 587), {@code SMTP_USER},
 * {@code SMTP_PASSWORD}, {@code SMTP_TLS} (STARTTLS required when true). Without {@code SMTP_HOST} the
 * email step is {@code suppressed / not_configured}. The password is never logged.
 */
@Singleton
public class SmtpSettings {

    private final String host;
    private final int port;
    private final String user;
    private final String password;
    private final boolean tls;

    SmtpSettings(@Value("${smtp.host:}") String host, @Value("${smtp.port:587}") int port,
                 @Value("${smtp.user:}") String user, @Value("${smtp.password:}") String password,
                 @Value("${smtp.tls:false}") boolean tls) {
        this.host = host;
        this.port = port;
        this.user = user;
        this.password = password;
        this.tls = tls;
    }

    public boolean configured() {
        return host != null && !host.isBlank();
    }

    String host() {
        return host;
    }

    int port() {
        return port;
    }

    String user() {
        return user;
    }

    String password() {
        return password;
    }

    boolean tls() {
        return tls;
    }

    @Override
    public String toString() {
        return "SMTP " + host + ":" + port + (tls ? " (STARTTLS)" : "") + (user.isBlank() ? "" : " as " + user);
    }
}
