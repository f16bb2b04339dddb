package dev.herald.ops;

import io.micronaut.core.io.ResourceResolver;
import io.micronaut.http.HttpResponse;
import io.micronaut.http.annotation.Controller;
import io.micronaut.http.annotation.Get;
import io.micronaut.http.annotation.Produces;
import io.micronaut.http.server.types.files.StreamedFile;
import io.micronaut.security.annotation.Secured;
import io.micronaut.security.rules.SecurityRule;
import io.swagger.v3.oas.annotations.Hidden;

/** {@code GET /openapi.yml}: the OpenAPI document Micronaut generated from the controllers at build time. */
@Controller
@Secured(SecurityRule.IS_ANONYMOUS)
class OpenApiController {

    static final String LOCATION = "classpath:META-INF/swagger/openapi.yml";

    private final ResourceResolver resources;

    OpenApiController(ResourceResolver resources) {
        this.resources = resources;
    }

    @Get("/openapi.yml")
    @Produces("application/yaml")
    @Hidden
    HttpResponse<StreamedFile> openapi() {
        return resources.getResource(LOCATION)
                .map(url -> HttpResponse.ok(new StreamedFile(url)))
                .orElseGet(HttpResponse::notFound);
    }
}
