package dev.herald.limits;

import dev.herald.support.Api;
import dev.herald.support.Fixtures;
import dev.herald.support.HeraldTest;
import io.micronaut.context.annotation.Property;
import io.micronaut.test.extensions.junit5.annotation.MicronautTest;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Each app key and each user has a token bucket in Redis: past its burst a request gets 429 with a
 * problem and {@code Retry-After}; another key or user is not affected; the admin key is not limited.
 */
@MicronautTest(transactional = false)
@Property(name = "herald.limits.key-per-second", value = "1")
@Property(name = "herald.limits.key-burst", value = "5")
@Property(name = "herald.limits.user-per-second", value = "1")
@Property(name = "herald.limits.user-burst", value = "3")
class RateLimitTest extends HeraldTest {

    private List<Integer> statuses(int n, String path, String bearer) {
        List<Integer> out = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            out.add(api.get(path, bearer).status());
        }
        return out;
    }

    @Test
    void aKeyPastItsBurstGets429WithRetryAfterAndOthersDoNot() {
        String app = fixtures.app();
        String key = fixtures.key(app, "live", "send");
        String other = fixtures.key(app, "live", "send");
        List<Integer> seen = statuses(8, "/v1/notifications/ntf_00000000000000000000000000000000", key);
        assertThat(seen.subList(0, 5)).as("the burst").containsOnly(404);
        assertThat(seen.subList(5, 8)).as("past it").containsOnly(429);

        Api.Response limited = api.get("/v1/notifications/ntf_00000000000000000000000000000000", key);
        assertThat(limited.status()).isEqualTo(429);
        assertThat(limited.contentType()).startsWith("application/problem+json");
        assertThat(limited.json().path("status").asInt()).isEqualTo(429);
        assertThat(Integer.parseInt(limited.headers().firstValue("Retry-After").orElseThrow())).isBetween(1, 2);

        assertThat(api.get("/v1/notifications/ntf_00000000000000000000000000000000", other).status())
                .as("another key has its own bucket").isEqualTo(404);
        assertThat(statuses(10, "/v1/apps/" + app, Fixtures.ADMIN_KEY)).as("the operator is not limited").containsOnly(200);
    }

    /**
     * Notifications served straight from Netty take their token as the filter does, exactly one each: the
     * burst of 5 lets 5 through whichever path served them, and the ones past it get the filter's 429.
     */
    @Test
    void notificationsServedDirectlyTakeOneTokenEach() {
        String key = fixtures.key(fixtures.app(), "live", "send");
        double directBefore = Api.metric(api.get("/metrics", null).body(), "herald_notifications_direct_total").orElse(0);
        List<Api.Response> answers = new ArrayList<>();
        for (int i = 0; i < 8; i++) {
            answers.add(api.post("/v1/notifications", key,
                    java.util.Map.of("to", java.util.Map.of("users", List.of("someone")), "title", "Hi " + i)));
        }
        double direct = Api.metric(api.get("/metrics", null).body(), "herald_notifications_direct_total").orElse(0)
                - directBefore;

        assertThat(answers.subList(0, 5)).extracting(Api.Response::status).as("the burst").containsOnly(202);
        assertThat(answers.subList(5, 8)).extracting(Api.Response::status).as("past it").containsOnly(429);
        assertThat(answers.get(7).headers().firstValue("Retry-After")).isPresent();
        assertThat(direct).as("the key's first request looked it up; the next were served directly").isGreaterThan(0);
    }

    @Test
    void anAppSetsItsOwnLimitForItsKeys() {
        String app = fixtures.app();
        Api.Response patched = api.patch("/v1/apps/" + app, Fixtures.ADMIN_KEY,
                java.util.Map.of("limits", java.util.Map.of("keyPerSecond", 1000, "keyBurst", 50)));
        assertThat(patched.status()).as(patched.toString()).isEqualTo(200);
        assertThat(patched.json().path("limits").path("keyBurst").asInt()).isEqualTo(50);
        String key = fixtures.key(app, "live", "send");
        assertThat(statuses(20, "/v1/notifications/ntf_00000000000000000000000000000000", key))
                .as("past the deployment's burst of 5, within the app's 50").containsOnly(404);

        Api.Response bad = api.patch("/v1/apps/" + app, Fixtures.ADMIN_KEY,
                java.util.Map.of("limits", java.util.Map.of("keyPerSecond", 0)));
        assertThat(bad.status()).isEqualTo(400);
        assertThat(Fixtures.fields(bad.json())).containsExactly("limits.keyPerSecond");
    }

    @Test
    void aUserIsLimitedAcrossTheirTokens() {
        String app = fixtures.app();
        String users = fixtures.key(app, "live", "users");
        String user = Fixtures.unique("limited");
        String first = fixtures.userToken(users, user);
        String second = fixtures.userToken(users, user);
        List<Integer> seen = new ArrayList<>(statuses(2, "/v1/inbox/unread-count", first));
        seen.addAll(statuses(2, "/v1/inbox/unread-count", second));
        assertThat(seen).containsExactly(200, 200, 200, 429);
        assertThat(api.get("/v1/inbox/unread-count", fixtures.userToken(users, Fixtures.unique("other"))).status())
                .isEqualTo(200);
    }
}
