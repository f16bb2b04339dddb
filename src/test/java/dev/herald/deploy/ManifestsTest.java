package dev.herald.deploy;

import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.fabric8.kubernetes.api.model.ConfigMap;
import io.fabric8.kubernetes.api.model.Container;
import io.fabric8.kubernetes.api.model.EnvVar;
import io.fabric8.kubernetes.api.model.HasMetadata;
import io.fabric8.kubernetes.api.model.Probe;
import io.fabric8.kubernetes.api.model.Secret;
import io.fabric8.kubernetes.api.model.Service;
import io.fabric8.kubernetes.api.model.ServiceAccount;
import io.fabric8.kubernetes.api.model.apps.Deployment;
import io.fabric8.kubernetes.api.model.autoscaling.v2.HorizontalPodAutoscaler;
import io.fabric8.kubernetes.api.model.networking.v1.NetworkPolicy;
import io.fabric8.kubernetes.api.model.policy.v1.PodDisruptionBudget;
import org.junit.jupiter.api.condition.EnabledIf;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.Test;
import org.yaml.snakeyaml.Yaml;

import java.io.IOException;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.regex.Pattern;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * The Kubernetes manifests, as an operator would apply them: each overlay rendered by kustomize
 * ({@code kubectl kustomize}, offline), every object read into the Kubernetes API's own types (fabric8's
 * model, generated from the API's OpenAPI schemas) with no field left unknown, and the promises of
 * {@code k8s/README.md} asserted: probes, resources, heap from the container's memory, graceful period,
 * no secret value anywhere. Runs where {@code kubectl} is installed, as on CI.
 */
@EnabledIf("kubectlInstalled")
class ManifestsTest {

    private static final Path K8S = Path.of("k8s");
    private static final ObjectMapper JSON = new ObjectMapper()
            .enable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES);
    private static final Map<String, Class<? extends HasMetadata>> TYPES = Map.of(
            "Deployment", Deployment.class, "Service", Service.class, "ConfigMap", ConfigMap.class,
            "ServiceAccount", ServiceAccount.class, "PodDisruptionBudget", PodDisruptionBudget.class,
            "HorizontalPodAutoscaler", HorizontalPodAutoscaler.class, "NetworkPolicy", NetworkPolicy.class,
            "Secret", Secret.class);
    private static final Pattern SECRET_LOOKING = Pattern.compile(
            "hk_(live|test|admin)_|BEGIN [A-Z ]*PRIVATE KEY|private_key|://[^/\\s:@]+:[^/\\s@]{3,}@");

    static boolean kubectlInstalled() {
        try {
            Process p = new ProcessBuilder("kubectl", "version", "--client").redirectErrorStream(true).start();
            p.getInputStream().readAllBytes();
            return p.waitFor(30, TimeUnit.SECONDS) && p.exitValue() == 0;
        } catch (IOException | InterruptedException e) {
            return false;
        }
    }

    /** The overlay rendered by kustomize, each object in its API type. */
    private static List<HasMetadata> render(String overlay) throws Exception {
        return render(K8S.resolve("overlays").resolve(overlay).toAbsolutePath(), overlay);
    }

    private static List<HasMetadata> render(Path dir, String overlay) throws Exception {
        Process p = new ProcessBuilder("kubectl", "kustomize", dir.toString())
                .redirectError(ProcessBuilder.Redirect.INHERIT).start();
        String yaml = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertThat(p.waitFor(60, TimeUnit.SECONDS)).isTrue();
        assertThat(p.exitValue()).as("kustomize renders " + overlay).isZero();
        List<HasMetadata> objects = new ArrayList<>();
        for (Object document : new Yaml().loadAll(yaml)) {
            Map<?, ?> map = (Map<?, ?>) document;
            String kind = String.valueOf(map.get("kind"));
            Class<? extends HasMetadata> type = TYPES.get(kind);
            assertThat(type).as("a kind this test knows: " + kind).isNotNull();
            HasMetadata object = JSON.convertValue(map, type);
            List<String> unknown = new ArrayList<>();
            unknownFields(object, kind, unknown, new IdentityHashMap<>());
            assertThat(unknown).as("fields the Kubernetes API does not have").isEmpty();
            objects.add(object);
        }
        return objects;
    }

    /** The model keeps fields it does not know in additionalProperties: any found is a misspelt or misplaced field. */
    private static void unknownFields(Object node, String path, List<String> unknown, Map<Object, Boolean> seen) {
        if (node == null || seen.put(node, true) != null) {
            return;
        }
        if (node instanceof List<?> list) {
            for (int i = 0; i < list.size(); i++) {
                unknownFields(list.get(i), path + "[" + i + "]", unknown, seen);
            }
            return;
        }
        if (node instanceof Map<?, ?> map) {
            map.forEach((k, v) -> unknownFields(v, path + "." + k, unknown, seen));
            return;
        }
        if (!node.getClass().getName().startsWith("io.fabric8.")) {
            return;
        }
        for (Method m : node.getClass().getMethods()) {
            if (m.getParameterCount() != 0 || Modifier.isStatic(m.getModifiers()) || !m.getName().startsWith("get")
                    || m.getDeclaringClass() == Object.class) {
                continue;
            }
            try {
                Object value = m.invoke(node);
                if (m.getName().equals("getAdditionalProperties")) {
                    if (value instanceof Map<?, ?> extra && !extra.isEmpty()) {
                        unknown.add(path + ": " + extra.keySet());
                    }
                } else {
                    unknownFields(value, path + "." + m.getName().substring(3), unknown, seen);
                }
            } catch (ReflectiveOperationException e) {
                throw new IllegalStateException(e);
            }
        }
    }

    private static <T> List<T> all(List<HasMetadata> objects, Class<T> type) {
        return objects.stream().filter(type::isInstance).map(type::cast).toList();
    }

    private static <T> T one(List<HasMetadata> objects, Class<T> type) {
        List<T> found = all(objects, type);
        assertThat(found).as(type.getSimpleName()).hasSize(1);
        return found.get(0);
    }

    @ParameterizedTest
    @ValueSource(strings = {"staging", "production"})
    void everyOverlayKeepsTheOperationalPromises(String overlay) throws Exception {
        List<HasMetadata> objects = render(overlay);
        assertThat(objects.stream().map(HasMetadata::getKind).distinct().sorted()).containsExactly(
                "ConfigMap", "Deployment", "HorizontalPodAutoscaler", "NetworkPolicy", "PodDisruptionBudget",
                "Service", "ServiceAccount");
        assertThat(all(objects, Secret.class)).as("no Secret (and so no secret value) is rendered").isEmpty();

        Deployment deployment = one(objects, Deployment.class);
        var pod = deployment.getSpec().getTemplate().getSpec();
        // preStop 5 s + streams told to reconnect + pushes in flight written and pushy flushed (15 s)
        assertThat(pod.getTerminationGracePeriodSeconds()).isGreaterThanOrEqualTo(30L);
        assertThat(pod.getAutomountServiceAccountToken()).isFalse();
        assertThat(pod.getSecurityContext().getRunAsNonRoot()).isTrue();
        assertThat(deployment.getSpec().getStrategy().getRollingUpdate().getMaxUnavailable().getIntVal()).isZero();
        for (Container c : pod.getContainers()) {
            assertThat(path(c.getLivenessProbe())).as("liveness never depends on a dependency").isEqualTo("/health/liveness");
            assertThat(path(c.getStartupProbe())).isEqualTo("/health/liveness");
            assertThat(path(c.getReadinessProbe())).isEqualTo("/health/readiness");
            assertThat(c.getResources().getRequests()).containsKeys("cpu", "memory");
            assertThat(c.getResources().getLimits()).containsKey("memory");
            assertThat(c.getLifecycle().getPreStop().getSleep().getSeconds()).isPositive();
            assertThat(c.getSecurityContext().getReadOnlyRootFilesystem()).isTrue();
            for (EnvVar env : c.getEnv()) {
                if (env.getName().matches(".*(PASSWORD|SECRET|KEY|USER).*")) {
                    assertThat(env.getValue()).as(env.getName() + " comes from a Secret").isNull();
                    assertThat(env.getValueFrom().getSecretKeyRef()).isNotNull();
                }
            }
        }
        ConfigMap config = one(objects, ConfigMap.class);
        assertThat(config.getData().get("JAVA_TOOL_OPTIONS")).as("the heap follows the container's memory")
                .contains("-XX:MaxRAMPercentage=");
        config.getData().forEach((k, v) -> {
            assertThat(k).doesNotContainPattern("PASSWORD|SECRET|ADMIN_KEY");
            assertThat(v).as(k).doesNotContainPattern(SECRET_LOOKING);
        });

        Map<String, String> podLabels = deployment.getSpec().getTemplate().getMetadata().getLabels();
        assertThat(podLabels).containsAllEntriesOf(deployment.getSpec().getSelector().getMatchLabels());
        assertThat(podLabels).containsAllEntriesOf(one(objects, Service.class).getSpec().getSelector());
        assertThat(podLabels).containsAllEntriesOf(one(objects, PodDisruptionBudget.class).getSpec().getSelector().getMatchLabels());
        assertThat(podLabels).containsAllEntriesOf(one(objects, NetworkPolicy.class).getSpec().getPodSelector().getMatchLabels());
        HorizontalPodAutoscaler hpa = one(objects, HorizontalPodAutoscaler.class);
        assertThat(hpa.getSpec().getScaleTargetRef().getName()).isEqualTo(deployment.getMetadata().getName());
        assertThat(hpa.getSpec().getMinReplicas()).isGreaterThanOrEqualTo(2);
        assertThat(one(objects, ServiceAccount.class).getMetadata().getName()).isEqualTo(pod.getServiceAccountName());
        assertThat(objects).allSatisfy(o -> assertThat(o.getMetadata().getNamespace()).isNotBlank());

        if (overlay.equals("staging")) {
            assertThat(config.getData()).containsEntry("HERALD_APNS_HOST", "api.sandbox.push.apple.com");
        } else {
            assertThat(config.getData()).as("production: APNs per app").doesNotContainKey("HERALD_APNS_HOST");
            assertThat(deployment.getSpec().getReplicas()).isGreaterThanOrEqualTo(3);
            assertThat(one(objects, PodDisruptionBudget.class).getSpec().getMinAvailable().getIntVal()).isEqualTo(2);
        }
    }

    @Test
    void aMisspeltFieldFailsTheCheck(@org.junit.jupiter.api.io.TempDir Path tmp) throws Exception {
        // an overlay of production with one misspelt field, beside the real ones (kustomize loads
        // nothing from outside a kustomization's tree)
        try (var files = Files.walk(K8S)) {
            for (Path f : files.toList()) {
                Path to = tmp.resolve(f.toString());
                if (Files.isDirectory(f)) {
                    Files.createDirectories(to);
                } else {
                    Files.copy(f, to);
                }
            }
        }
        Path dir = Files.createDirectories(tmp.resolve("k8s/overlays/typo"));
        Files.writeString(dir.resolve("kustomization.yaml"), """
                resources:
                  - ../production
                patches:
                  - path: typo.yaml
                """);
        Files.writeString(dir.resolve("typo.yaml"), """
                apiVersion: apps/v1
                kind: Deployment
                metadata:
                  name: herald
                spec:
                  template:
                    spec:
                      containers:
                        - name: herald
                          livenessProbes:
                            httpGet:
                              path: /health
                """);
        org.assertj.core.api.Assertions.assertThatThrownBy(() -> render(dir, "with a typo"))
                .hasMessageContaining("livenessProbes");
    }

    @Test
    void theSecretTemplateNamesKeysOnly() throws Exception {
        Map<?, ?> template = new Yaml().load(Files.readString(K8S.resolve("base/secret.template.yaml")));
        Secret secret = JSON.convertValue(template, Secret.class);
        assertThat(secret.getStringData()).containsKeys("HERALD_ADMIN_KEY", "HERALD_JWT_SECRET", "HERALD_MASTER_KEY");
        assertThat(secret.getStringData().values()).allSatisfy(v -> assertThat(v).isEmpty());
        assertThat(secret.getData()).isNullOrEmpty();
        Map<?, ?> kustomization = new Yaml().load(Files.readString(K8S.resolve("base/kustomization.yaml")));
        assertThat(String.valueOf(kustomization.get("resources"))).doesNotContain("secret.template");
        assertThat((List<?>) kustomization.get("resources")).isNotEmpty();
    }

    private static String path(Probe probe) {
        assertThat(probe).isNotNull();
        return probe.getHttpGet().getPath();
    }

}
