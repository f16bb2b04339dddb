package dev.herald.process;

import dev.herald.support.Api;
import dev.herald.support.Fixtures;
import dev.herald.support.MockApns;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Collectors;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/**
 * A Herald process killed with {@code kill -9} in the middle of a burst of notifications, then
 * started again, delivers every notification it had answered 202 to: none lost. Pushes sent before
 * the kill whose outcome was not yet recorded are sent again (at least once, with the same
 * {@code apns-id}); the test reports how many.
 */
class DeliveryAfterKillIT {

    private static final String TEAM = "TEAM123456";
    private static final String KEY_ID = "KEY1234567";
    private static final int DEVICES = 50;
    private static final int NOTIFICATIONS = 1_500;

    @Test
    void everyAcceptedNotificationIsDeliveredAfterAKillDashNine() throws Exception {
        Path dataDir = Path.of(System.getProperty("herald.data-dir", "target/it-data")).resolve("kill-burst");
        HeraldProcess.deleteRecursively(dataDir);
        String p8 = Fixtures.p8();
        try (MockApns apns = MockApns.create()) {
            apns.trust(TEAM, KEY_ID, p8);
            Map<String, String> env = Map.of(
                    "HERALD_DATA_DIR", dataDir.toString(),
                    "HERALD_ADMIN_KEY", Fixtures.ADMIN_KEY,
                    "HERALD_APNS_HOST", "127.0.0.1",
                    "HERALD_APNS_PORT", Integer.toString(apns.port()),
                    "HERALD_APNS_TRUSTED_CERT", apns.certificatePath().toString());
            Set<String> accepted = ConcurrentHashMap.newKeySet();
            Map<String, String> deviceOf = new ConcurrentHashMap<>();
            String key;
            try (HeraldProcess first = HeraldProcess.start("burst-first", env)) {
                first.awaitHealthy(Duration.ofSeconds(30));
                Api api = first.api();
                assertThat(api.post("/v1/apps", Fixtures.ADMIN_KEY, Map.of("id", "burst", "name", "Burst",
                        "apns", Map.of("teamId", TEAM, "keyId", KEY_ID, "privateKey", p8, "bundleId", "com.example.burst",
                                "environment", "sandbox"))).status()).isEqualTo(201);
                key = api.post("/v1/apps/burst/keys", Fixtures.ADMIN_KEY,
                        Map.of("name", "k", "mode", "live", "scopes", List.of("send", "users"))).json().path("key").asText();
                String userToken = api.post("/v1/users/burst-user/tokens", key, Map.of()).json().path("token").asText();
                for (int i = 0; i < DEVICES; i++) {
                    assertThat(api.put("/v1/devices/burst-" + i, userToken,
                            Fixtures.iosDevice("burst", Fixtures.apnsToken())).status()).isEqualTo(201);
                }
                // a burst from 8 senders; the process dies under it once a third was accepted
                ExecutorService senders = Executors.newFixedThreadPool(8);
                AtomicInteger next = new AtomicInteger();
                for (int s = 0; s < 8; s++) {
                    senders.execute(() -> {
                        int n;
                        while ((n = next.getAndIncrement()) < NOTIFICATIONS) {
                            String installation = "burst-" + (n % DEVICES);
                            try {
                                Api.Response r = api.post("/v1/notifications", key, Map.of(
                                        "to", Map.of("devices", List.of(installation)), "title", "Burst " + n));
                                if (r.status() == 202) {
                                    String id = r.json().path("id").asText();
                                    accepted.add(id);
                                    deviceOf.put(id, installation);
                                }
                            } catch (RuntimeException connectionLost) {
                                return;
                            }
                        }
                    });
                }
                await().atMost(Duration.ofSeconds(60)).until(() -> accepted.size() >= NOTIFICATIONS / 3);
                first.kill();
                senders.shutdown();
                assertThat(senders.awaitTermination(30, TimeUnit.SECONDS)).isTrue();
            }
            int pushedBeforeKill = apns.received().size();
            System.out.printf("accepted %d notifications before kill -9; %d pushes had reached APNs%n",
                    accepted.size(), pushedBeforeKill);

            try (HeraldProcess second = HeraldProcess.start("burst-second", env)) {
                second.awaitHealthy(Duration.ofSeconds(30));
                Api api = second.api();
                await().atMost(Duration.ofSeconds(120)).pollInterval(Duration.ofMillis(500)).until(() ->
                        apns.countsByApnsId().keySet().containsAll(expectedIds(accepted, deviceOf)));
                // a push whose outcome the killed process had not recorded stays queued until its lease ends
                List<String> notDone = new ArrayList<>(accepted);
                await().atMost(Duration.ofSeconds(120)).pollInterval(Duration.ofSeconds(1)).until(() -> {
                    notDone.removeIf(id -> {
                        Api.Response status = api.get("/v1/notifications/" + id, key);
                        return "done".equals(status.json().path("status").asText())
                                && status.json().path("counts").path("sent").asInt() == 1;
                    });
                    return notDone.isEmpty();
                });
                Map<String, Long> byId = apns.countsByApnsId();
                long duplicates = byId.values().stream().filter(c -> c > 1).mapToLong(c -> c - 1).sum();
                System.out.printf("all %d accepted notifications delivered after the restart; %d duplicate pushes "
                        + "(sent before the kill, outcome not yet recorded)%n", accepted.size(), duplicates);
                assertThat(byId.keySet()).containsAll(expectedIds(accepted, deviceOf));
            }
        }
    }

    private static Set<String> expectedIds(Set<String> accepted, Map<String, String> deviceOf) {
        return accepted.stream().map(id -> Fixtures.apnsId(id, deviceOf.get(id))).collect(Collectors.toSet());
    }
}
