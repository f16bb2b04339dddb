package dev.herald.api;

import io.micronaut.http.HttpStatus;

/**
 * Every kind of problem Herald answers with ({@code application/problem+json}, RFC 9457), in one
 * place so that a {@code type} URI means one thing across the API.
 */
public enum ProblemType {
    INVALID_REQUEST("invalid-request", HttpStatus.BAD_REQUEST, "The request is not valid"),
    MALFORMED_JSON("malformed-json", HttpStatus.BAD_REQUEST, "The body is not well-formed JSON"),
    UNAUTHORIZED("unauthorized", HttpStatus.UNAUTHORIZED, "A valid credential is required"),
    FORBIDDEN("forbidden", HttpStatus.FORBIDDEN, "This credential may not do that"),
    NOT_FOUND("not-found", HttpStatus.NOT_FOUND, "Not found"),
    METHOD_NOT_ALLOWED("method-not-allowed", HttpStatus.METHOD_NOT_ALLOWED, "Method not allowed"),
    NOT_ACCEPTABLE("not-acceptable", HttpStatus.NOT_ACCEPTABLE, "Not acceptable"),
    CONFLICT("conflict", HttpStatus.CONFLICT, "Conflict"),
    PAYLOAD_TOO_LARGE("payload-too-large", HttpStatus.REQUEST_ENTITY_TOO_LARGE, "Payload too large"),
    UNSUPPORTED_MEDIA_TYPE("unsupported-media-type", HttpStatus.UNSUPPORTED_MEDIA_TYPE, "Unsupported media type"),
    RATE_LIMITED("rate-limited", HttpStatus.TOO_MANY_REQUESTS, "Too many requests"),
    UNAVAILABLE("unavailable", HttpStatus.SERVICE_UNAVAILABLE, "Temporarily unavailable"),
    INTERNAL("internal", HttpStatus.INTERNAL_SERVER_ERROR, "Internal error");

    private static final String BASE = "https://herald.dev/problems/";

    private final String slug;
    private final HttpStatus status;
    private final String title;

    ProblemType(String slug, HttpStatus status, String title) {
        this.slug = slug;
        this.status = status;
        this.title = title;
    }

    public String uri() {
        return BASE + slug;
    }

    public HttpStatus status() {
        return status;
    }

    public String title() {
        return title;
    }

    /** The problem type that stands for an HTTP status the framework produced by itself. */
    static ProblemType forStatus(int status) {
        for (ProblemType type : values()) {
            if (type.status.getCode() == status && type != MALFORMED_JSON) {
                return type;
            }
        }
        return status >= 500 ? INTERNAL : INVALID_REQUEST;
    }
}
