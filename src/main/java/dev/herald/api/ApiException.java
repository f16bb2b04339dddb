package dev.herald.api;

import java.util.List;
import java.util.Map;

/**
 * A request Herald refuses, carrying the problem to answer. Thrown from anywhere below a controller
 * and turned into {@code application/problem+json} by {@link ApiExceptionHandler}; cheap to create
 * (no stack trace), because refusals are normal control flow.
 */
public class ApiException extends RuntimeException {

    private final ProblemType type;
    private final List<Problem.FieldError> errors;
    private final Map<String, String> headers;

    public ApiException(ProblemType type, String detail, List<Problem.FieldError> errors, Map<String, String> headers) {
        super(detail, null, false, false);
        this.type = type;
        this.errors = List.copyOf(errors);
        this.headers = Map.copyOf(headers);
    }

    public ApiException(ProblemType type, String detail) {
        this(type, detail, List.of(), Map.of());
    }

    public static ApiException invalid(String field, String message) {
        return new ApiException(ProblemType.INVALID_REQUEST, field + ": " + message,
                List.of(new Problem.FieldError(field, message)), Map.of());
    }

    public static ApiException invalid(List<Problem.FieldError> errors) {
        Problem.FieldError first = errors.get(0);
        String detail = errors.size() == 1
                ? first.field() + ": " + first.message()
                : first.field() + ": " + first.message() + " (and " + (errors.size() - 1) + " more)";
        return new ApiException(ProblemType.INVALID_REQUEST, detail, errors, Map.of());
    }

    /** PostgreSQL could not be reached: 503, worth a retry in a few seconds. */
    public static ApiException databaseUnavailable() {
        return new ApiException(ProblemType.UNAVAILABLE, "The database is unavailable; retry shortly", List.of(),
                Map.of("Retry-After", "5"));
    }

    /** A dependency other than the database is unreachable: 503, worth a retry in a few seconds. */
    public static ApiException unavailable(String detail) {
        return new ApiException(ProblemType.UNAVAILABLE, detail, List.of(), Map.of("Retry-After", "5"));
    }

    /**
     * A live event showed the item (or notification) before its routing stored it, a moment ago: 503
     * with {@code Retry-After: 1}.
     */
    public static ApiException notStoredYet(String what) {
        return inASecond(what + " was shown live and is being stored");
    }

    public static ApiException notWrittenYet(String what) {
        return inASecond(what + " is being recorded");
    }

    /** 503 with {@code Retry-After: 1}: what was asked for exists in a moment. */
    private static ApiException inASecond(String detail) {
        return new ApiException(ProblemType.UNAVAILABLE, detail + "; try again in a second", List.of(),
                Map.of("Retry-After", "1"));
    }

    public static ApiException notFound(String what) {
        return new ApiException(ProblemType.NOT_FOUND, what + " not found");
    }

    public static ApiException forbidden(String detail) {
        return new ApiException(ProblemType.FORBIDDEN, detail);
    }

    public static ApiException conflict(String detail) {
        return new ApiException(ProblemType.CONFLICT, detail);
    }

    public ProblemType type() {
        return type;
    }

    public List<Problem.FieldError> errors() {
        return errors;
    }

    public Map<String, String> headers() {
        return headers;
    }

    public Problem toProblem() {
        return new Problem(type.uri(), type.title(), type.status().getCode(), getMessage(),
                errors.isEmpty() ? null : errors);
    }
}
