package dev.herald.dashboard;

import io.micronaut.core.io.ResourceResolver;
import io.micronaut.http.HttpResponse;
import io.micronaut.http.MediaType;
import io.micronaut.http.annotation.Controller;
import io.micronaut.http.annotation.Get;
import io.micronaut.http.annotation.PathVariable;
import io.micronaut.security.annotation.Secured;
import io.micronaut.security.rules.SecurityRule;
import io.swagger.v3.oas.annotations.Hidden;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.util.Map;

/**
 * {@code GET /dashboard}: the operator's page, loaded without a credential; it asks for a key (the admin
 * key, or an app key with scope {@code admin}) and sends it only with its own calls to {@code GET /v1/stats}.
 * Its files (and Chart.js, from its WebJar) are read once from the classpath and served with a strict
 * Content-Security-Policy: scripts and styles from this origin only, no inline script.
 */
@Controller("/dashboard")
@Secured(SecurityRule.IS_ANONYMOUS)
@Hidden
class DashboardController {

    private static final String CHART_JS = "classpath:META-INF/resources/webjars/chart.js/4.5.1/dist/chart.umd.min.js";
    private static final String POLICY = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            + "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

    private record Asset(byte[] bytes, String type) {
    }

    private final Map<String, Asset> assets;

    DashboardController(ResourceResolver resources) {
        assets = Map.of(
                "index.html", read(resources, "classpath:dashboard/index.html", MediaType.TEXT_HTML + ";charset=utf-8"),
                "dashboard.js", read(resources, "classpath:dashboard/dashboard.js", "text/javascript;charset=utf-8"),
                "dashboard.css", read(resources, "classpath:dashboard/dashboard.css", "text/css;charset=utf-8"),
                "chart.umd.min.js", read(resources, CHART_JS, "text/javascript;charset=utf-8"));
    }

    private static Asset read(ResourceResolver resources, String path, String type) {
        try (InputStream in = resources.getResourceAsStream(path)
                .orElseThrow(() -> new IllegalStateException("missing from the jar: " + path))) {
            return new Asset(in.readAllBytes(), type);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    @Get
    HttpResponse<byte[]> page() {
        return serve(assets.get("index.html"));
    }

    @Get("/{file}")
    HttpResponse<byte[]> asset(@PathVariable String file) {
        Asset asset = assets.get(file);
        return asset == null || file.equals("index.html") ? HttpResponse.notFound() : serve(asset);
    }

    private static HttpResponse<byte[]> serve(Asset asset) {
        return HttpResponse.ok(asset.bytes()).contentType(asset.type())
                .header("Content-Security-Policy", POLICY)
                .header("X-Content-Type-Options", "nosniff")
                .header("Referrer-Policy", "no-referrer")
                .header("Cache-Control", "no-cache");
    }
}
