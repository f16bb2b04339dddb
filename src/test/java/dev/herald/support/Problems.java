package dev.herald.support;

import com.fasterxml.jackson.databind.JsonNode;

import static org.assertj.core.api.Assertions.assertThat;

/** Assertions on the problem answers every error must be. */
public final class Problems {

    private Problems() {
    }

    /** Asserts an {@code application/problem+json} answer with this status and no internals in it. */
    public static JsonNode assertProblem(Api.Response response, int status) {
        assertThat(response.status()).as(response.toString()).isEqualTo(status);
        assertThat(response.contentType()).startsWith("application/problem+json");
        JsonNode problem = response.json();
        assertThat(problem.path("status").asInt()).isEqualTo(status);
        assertThat(problem.path("type").asText()).startsWith("https://herald.dev/problems/");
        assertThat(problem.path("title").asText()).isNotBlank();
        assertThat(problem.path("detail").asText()).isNotBlank();
        assertThat(response.body()).doesNotContain("Exception", "\tat ", "dev.herald.", "java.", "io.micronaut");
        return problem;
    }

    /** Asserts a 400 problem whose {@code errors} name {@code field}. */
    public static JsonNode assertInvalid(Api.Response response, String field) {
        JsonNode problem = assertProblem(response, 400);
        assertThat(Fixtures.fields(problem)).as(response.toString()).contains(field);
        return problem;
    }
}
