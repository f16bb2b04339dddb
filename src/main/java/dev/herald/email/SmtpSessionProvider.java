package dev.herald.email;

import io.micronaut.context.annotation.Replaces;
import io.micronaut.email.javamail.sender.DefaultSessionProvider;
import io.micronaut.email.javamail.sender.SessionProvider;
import jakarta.inject.Singleton;
import jakarta.mail.Authenticator;
import jakarta.mail.PasswordAuthentication;
import jakarta.mail.Session;

import java.util.Properties;

/** micronaut-email's JavaMail session, from {@link SmtpSettings} (the {@code SMTP_*} variables). */
@Singleton
@Replaces(DefaultSessionProvider.class)
class SmtpSessionProvider implements SessionProvider {

    private final Session session;

    SmtpSessionProvider(SmtpSettings smtp) {
        Properties props = new Properties();
        props.put("mail.transport.protocol", "smtp");
        props.put("mail.smtp.host", smtp.configured() ? smtp.host() : "localhost");
        props.put("mail.smtp.port", Integer.toString(smtp.port()));
        props.put("mail.smtp.connectiontimeout", "5000");
        props.put("mail.smtp.timeout", "10000");
        props.put("mail.smtp.writetimeout", "10000");
        if (smtp.tls()) {
            props.put("mail.smtp.starttls.enable", "true");
            props.put("mail.smtp.starttls.required", "true");
        }
        Authenticator authenticator = null;
        if (!smtp.user().isBlank()) {
            props.put("mail.smtp.auth", "true");
            PasswordAuthentication credentials = new PasswordAuthentication(smtp.user(), smtp.password());
            authenticator = new Authenticator() {
                @Override
                protected PasswordAuthentication getPasswordAuthentication() {
                    return credentials;
                }
            };
        }
        this.session = Session.getInstance(props, authenticator);
    }

    @Override
    public Session session() {
        return session;
    }
}
