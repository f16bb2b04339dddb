package dev.herald.api;

import io.micronaut.http.HttpRequest;
import io.micronaut.http.HttpResponse;
import io.micronaut.http.HttpStatus;
import io.micronaut.http.annotation.Produces;
import io.micronaut.http.server.exceptions.ExceptionHandler;
import io.micronaut.http.server.exceptions.response.ErrorContext;
import io.micronaut.http.server.exceptions.response.ErrorResponseProcessor;
import jakarta.inject.Singleton;


/**
 * The last resort for exceptions no more specific handler took: a request that could not reach
 * PostgreSQL is answered 503 with {@code Retry-After}, never a 500 and never a hang (the pool gives up
 * after its connection timeout); anything else is unexpected and answered as a 500 problem with an
 * incident id.
 */
@Singleton
@Produces(Problem.MEDIA_TYPE)
final class UnhandledExceptionHandler implements ExceptionHandler<RuntimeException, HttpResponse<?>> {

    private final ApiExceptionHandler problems;
    private final ErrorResponseProcessor<?> errors;

    UnhandledExceptionHandler(ApiExceptionHandler problems, ErrorResponseProcessor<?> errors) {
        this.problems = problems;
        this.errors = errors;
    }

    @Override
    public HttpResponse<?> handle(HttpRequest request, RuntimeException exception) {
        if (SqlStates.isUnavailable(exception)) {
            return problems.handle(request, ApiException.databaseUnavailable());
        }
        return errors.processResponse(ErrorContext.builder(request).cause(exception).build(),
                HttpResponse.status(HttpStatus.INTERNAL_SERVER_ERROR));
    }
}
