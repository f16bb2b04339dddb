package dev.herald.notifications;

import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;

/**
 * A title or body: one string, or texts by BCP 47 locale in the order the sender gave them. Each
 * recipient gets their own locale, else its language alone ({@code pt} for {@code pt-BR}), else
 * {@code en}, else the first text given.
 */
public record LocalizedText(Map<String, String> byLocale) {

    /** The key under which a plain string is kept. */
    static final String ANY = "";

    public LocalizedText {
        Objects.requireNonNull(byLocale, "byLocale");
        if (byLocale.isEmpty()) {
            throw new IllegalArgumentException("a localized text needs at least one text");
        }
        byLocale = java.util.Collections.unmodifiableMap(new LinkedHashMap<>(byLocale));
    }

    public static LocalizedText of(String text) {
        return new LocalizedText(Map.of(ANY, text));
    }

    /** The text for a recipient whose locale is {@code locale} (may be null). */
    public String forLocale(String locale) {
        if (byLocale.size() == 1) {
            return byLocale.values().iterator().next();
        }
        if (locale != null) {
            String wanted = normalize(locale);
            String language = wanted.contains("-") ? wanted.substring(0, wanted.indexOf('-')) : wanted;
            String languageMatch = null;
            for (Map.Entry<String, String> e : byLocale.entrySet()) {
                String given = normalize(e.getKey());
                if (given.equals(wanted)) {
                    return e.getValue();
                }
                if (languageMatch == null && given.equals(language)) {
                    languageMatch = e.getValue();
                }
            }
            if (languageMatch != null) {
                return languageMatch;
            }
        }
        for (Map.Entry<String, String> e : byLocale.entrySet()) {
            if (normalize(e.getKey()).equals("en")) {
                return e.getValue();
            }
        }
        return byLocale.values().iterator().next();
    }

    /** The locale keys a recipient can end up with: every given one (a plain string has one, {@code ""}). */
    public Iterable<String> locales() {
        return byLocale.keySet();
    }

    private static String normalize(String locale) {
        return locale.replace('_', '-').toLowerCase(Locale.ROOT);
    }
}
