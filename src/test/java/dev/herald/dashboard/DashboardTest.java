package dev.herald.dashboard;

import dev.herald.support.Api;
import dev.herald.support.HeraldTest;
import io.micronaut.test.extensions.junit5.annotation.MicronautTest;
import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;

/** The dashboard's files are served without a credential, with a policy that allows only this origin's scripts. */
@MicronautTest(transactional = false)
class DashboardTest extends HeraldTest {

    @Test
    void thePageAndItsScriptsLoadWithoutACredential() {
        Api.Response page = api.get("/dashboard", null);
        assertThat(page.status()).isEqualTo(200);
        assertThat(page.contentType()).startsWith("text/html");
        assertThat(page.body()).contains("<canvas id=\"deliveries-chart\"").contains("/dashboard/chart.umd.min.js")
                .doesNotContain("<script>");
        assertThat(page.headers().firstValue("Content-Security-Policy").orElseThrow())
                .contains("script-src 'self'").contains("default-src 'none'");

        Api.Response chart = api.get("/dashboard/chart.umd.min.js", null);
        assertThat(chart.status()).isEqualTo(200);
        assertThat(chart.contentType()).startsWith("text/javascript");
        assertThat(chart.body()).contains("Chart.js v4.5.1");
        assertThat(api.get("/dashboard/dashboard.js", null).body()).contains("/v1/stats");
        assertThat(api.get("/dashboard/dashboard.css", null).status()).isEqualTo(200);

        assertThat(api.get("/dashboard/secrets.txt", null).status()).isEqualTo(404);
        assertThat(api.get("/v1/stats", null).status()).as("its data still needs a key").isEqualTo(401);
    }
}
