package dev.herald.api;

import io.micronaut.core.annotation.NonNull;
import io.micronaut.core.convert.exceptions.ConversionErrorException;
import io.micronaut.http.HttpStatus;
import io.micronaut.http.MutableHttpResponse;
import io.micronaut.http.server.exceptions.response.Error;
import io.micronaut.http.server.exceptions.response.ErrorContext;
import io.micronaut.http.server.exceptions.response.ErrorResponseProcessor;
import io.micronaut.web.router.exceptions.UnsatisfiedRouteException;
import jakarta.inject.Singleton;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.ArrayList;
import java.util.List;
import java.util.UUID;

/**
 * Turns every error the framework answers by itself (unknown route, wrong method or media type, a
 * body over the limit, a query parameter of the wrong type, a refused credential, an unexpected
 * exception) into {@code application/problem+json}. Internals never reach the client: a 5xx names an
 * incident id that is also in the log.
 */
@Singleton
final class ProblemResponseProcessor implements ErrorResponseProcessor<Problem> {

    private static final Logger LOG = LoggerFactory.getLogger(ProblemResponseProcessor.class);
    /** The path of the stand-in request Micronaut answers for bytes that did not decode as HTTP. */
    private static final String BAD_REQUEST_PATH = "/bad-request";

    @Override
    @NonNull
    public MutableHttpResponse<Problem> processResponse(@NonNull ErrorContext context,
                                                        @NonNull MutableHttpResponse<?> response) {
        // an overlong request line or header block fails Netty's decoding before there is a request: the
        // framework answers it as a 413 for a stand-in request, as if a body were too large; it is not
        var request = context.getRequest();
        boolean undecodable = BAD_REQUEST_PATH.equals(request.getPath())
                || (request.getContentLength() <= 0 && !request.getHeaders().contains("Transfer-Encoding"));
        if (undecodable && response.code() == HttpStatus.REQUEST_ENTITY_TOO_LARGE.getCode()) {
            response.status(HttpStatus.BAD_REQUEST);
            return response.contentType(Problem.MEDIA_TYPE).body(new Problem(ProblemType.INVALID_REQUEST.uri(),
                    ProblemType.INVALID_REQUEST.title(), 400, "The request line or its headers are too long: at most "
                    + "4,096 bytes of method, path and query, and 8 KiB of headers", null));
        }
        int status = response.code();
        ProblemType type = ProblemType.forStatus(status);
        String detail;
        List<Problem.FieldError> errors = new ArrayList<>();
        if (status >= 500) {
            String incident = UUID.randomUUID().toString();
            LOG.error("Unexpected error {} on {} {}", incident, context.getRequest().getMethodName(),
                    context.getRequest().getPath(), context.getRootCause().orElse(null));
            detail = "An unexpected error occurred (incident " + incident + ")";
        } else {
            detail = detailFor(status, context, errors);
        }
        if (status == HttpStatus.UNAUTHORIZED.getCode()) {
            response.header("WWW-Authenticate", "Bearer");
        }
        return response.contentType(Problem.MEDIA_TYPE)
                .body(new Problem(type.uri(), type.title(), status, detail, errors.isEmpty() ? null : errors));
    }

    private static String detailFor(int status, ErrorContext context, List<Problem.FieldError> errors) {
        Throwable cause = context.getRootCause().orElse(null);
        if (cause instanceof ConversionErrorException conversion) {
            String field = conversion.getArgument().getName();
            errors.add(new Problem.FieldError(field, "has the wrong type or format"));
            return field + ": has the wrong type or format";
        }
        if (cause instanceof UnsatisfiedRouteException unsatisfied) {
            String field = unsatisfied.getArgument().getName();
            String name = "body".equals(field) ? "" : field;
            errors.add(new Problem.FieldError(name, "is required"));
            return "body".equals(field) ? "A JSON body is required" : field + ": is required";
        }
        if (status == HttpStatus.UNAUTHORIZED.getCode()) {
            return "Send a valid credential as 'Authorization: Bearer <key or token>'";
        }
        if (status == HttpStatus.FORBIDDEN.getCode()) {
            return "This credential may not do that";
        }
        if (status == HttpStatus.NOT_FOUND.getCode()) {
            return "No such resource: " + context.getRequest().getPath();
        }
        if (status == HttpStatus.METHOD_NOT_ALLOWED.getCode()) {
            return "Method " + context.getRequest().getMethodName() + " is not allowed here";
        }
        if (status == HttpStatus.REQUEST_ENTITY_TOO_LARGE.getCode()) {
            return "The request body is larger than the limit of 1 MiB";
        }
        if (status == HttpStatus.UNSUPPORTED_MEDIA_TYPE.getCode()) {
            return "Send the body as application/json";
        }
        return context.getErrors().stream().map(Error::getMessage).findFirst()
                .map(ProblemResponseProcessor::withoutInternals)
                .orElse(HttpStatus.valueOf(status).getReason());
    }

    /** Framework messages may name Java types; keep only a short, safe sentence. */
    private static String withoutInternals(String message) {
        String firstLine = message.lines().findFirst().orElse("");
        return firstLine.contains("java.") || firstLine.contains("dev.herald") || firstLine.length() > 200
                ? "The request could not be processed as sent" : firstLine;
    }
}
