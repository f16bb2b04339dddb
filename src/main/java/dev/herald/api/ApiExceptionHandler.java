package dev.herald.api;

import io.micronaut.context.annotation.Requires;
import io.micronaut.http.HttpRequest;
import io.micronaut.http.HttpResponse;
import io.micronaut.http.MutableHttpResponse;
import io.micronaut.http.annotation.Produces;
import io.micronaut.http.server.exceptions.ExceptionHandler;
import jakarta.inject.Singleton;

/** Answers an {@link ApiException} with its problem. */
@Singleton
@Produces(Problem.MEDIA_TYPE)
@Requires(classes = {ApiException.class, ExceptionHandler.class})
final class ApiExceptionHandler implements ExceptionHandler<ApiException, HttpResponse<Problem>> {

    @Override
    public HttpResponse<Problem> handle(HttpRequest request, ApiException exception) {
        MutableHttpResponse<Problem> response = HttpResponse.<Problem>status(exception.type().status())
                .contentType(Problem.MEDIA_TYPE)
                .body(exception.toProblem());
        exception.headers().forEach(response::header);
        if (exception.type() == ProblemType.UNAUTHORIZED) {
            response.header("WWW-Authenticate", "Bearer");
        }
        return response;
    }
}
