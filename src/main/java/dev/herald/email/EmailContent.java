package dev.herald.email;

import com.google.common.escape.Escaper;
import com.google.common.html.HtmlEscapers;

/**
 * What an email says, in one locale: the subject (the title, on one line), a plain-text body and the
 * same as HTML (escaped), each with the notification's link.
 */
record EmailContent(String subject, String text, String html) {

    private static final Escaper HTML = HtmlEscapers.htmlEscaper();

    static EmailContent of(String appName, String title, String body, String link) {
        String subject = oneLine(title != null ? title : appName);
        StringBuilder text = new StringBuilder();
        StringBuilder html = new StringBuilder("<!DOCTYPE html><html><body>");
        if (title != null) {
            text.append(title).append("\n\n");
            html.append("<h2>").append(HTML.escape(title)).append("</h2>");
        }
        if (body != null) {
            text.append(body).append("\n\n");
            html.append("<p>").append(HTML.escape(body).replace("\n", "<br>")).append("</p>");
        }
        if (link != null) {
            text.append(link).append('\n');
            html.append("<p><a href=\"").append(HTML.escape(link)).append("\">").append(HTML.escape(link)).append("</a></p>");
        }
        html.append("<p style=\"color:#888\">").append(HTML.escape(appName)).append("</p></body></html>");
        return new EmailContent(subject, text.toString().strip() + "\n", html.toString());
    }

    /** A subject never carries a line break (no header injection), nor more than 200 characters. */
    static String oneLine(String s) {
        String flat = s.replaceAll("[\\r\\n\\t\\x00-\\x1f\\x7f]+", " ").strip();
        return flat.length() > 200 ? flat.substring(0, 200) : flat;
    }
}
