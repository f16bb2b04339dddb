package dev.herald.api;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.networknt.schema.JsonSchema;
import com.networknt.schema.JsonSchemaFactory;
import com.networknt.schema.SchemaLocation;
import com.networknt.schema.SchemaValidatorsConfig;
import com.networknt.schema.SpecVersion;
import com.networknt.schema.ValidationMessage;
import dev.herald.support.Api;
import dev.herald.support.Fixtures;
import dev.herald.support.HeraldTest;
import io.micronaut.test.extensions.junit5.annotation.MicronautTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Stream;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * device-schema/json is the contract of the device API: its examples validate against their
 * schemas, the API accepts the request examples, and what it answers validates against the answer
 * schemas (read from the files in the repository, not from the jar).
 */
@MicronautTest(transactional = false)
class SchemaContractTest extends HeraldTest {

    private static final Path DIR = Path.of("device-schema/json");
    private static final JsonSchemaFactory FACTORY = JsonSchemaFactory.getInstance(SpecVersion.VersionFlag.V202012,
            b -> b.schemaMappers(m -> m.mapPrefix("https://herald.dev/schema/", DIR.toAbsolutePath().toUri().toString())));
    private static final SchemaValidatorsConfig CONFIG = SchemaValidatorsConfig.builder()
            .formatAssertionsEnabled(true).errorMessageKeyword("message").build();

    static Stream<Path> examples() throws IOException {
        try (Stream<Path> files = Files.list(DIR.resolve("examples"))) {
            return files.sorted().toList().stream();
        }
    }

    private static Set<ValidationMessage> validate(String schema, JsonNode document) {
        JsonSchema loaded = FACTORY.getSchema(SchemaLocation.of("https://herald.dev/schema/" + schema + ".schema.json"), CONFIG);
        return loaded.validate(document);
    }

    private static void assertValid(String schema, JsonNode document) {
        assertThat(validate(schema, document)).as(schema + ": " + document).isEmpty();
    }

    @ParameterizedTest
    @MethodSource("examples")
    void everyExampleValidatesAgainstItsSchema(Path example) throws IOException {
        String schema = example.getFileName().toString().replaceFirst("(\\.[a-z]+)?\\.json$", "");
        assertThat(DIR.resolve(schema + ".schema.json")).exists();
        assertValid(schema, Api.JSON.readTree(example.toFile()));
    }

    @Test
    void everySchemaIsAValidDraft202012Schema() throws IOException {
        JsonSchema meta = JsonSchemaFactory.getInstance(SpecVersion.VersionFlag.V202012)
                .getSchema(SchemaLocation.of("https://json-schema.org/draft/2020-12/schema"));
        try (Stream<Path> files = Files.list(DIR)) {
            for (Path schema : files.filter(f -> f.toString().endsWith(".schema.json")).toList()) {
                assertThat(meta.validate(Api.JSON.readTree(schema.toFile()))).as(schema.toString()).isEmpty();
            }
        }
    }

    @Test
    void theApiAcceptsTheRequestExamplesAndAnswersTheDocumentedShapes() throws IOException {
        Fixtures.Tenant tenant = fixtures.tenant();
        for (String variant : List.of("ios", "android")) {
            ObjectNode request = (ObjectNode) Api.JSON.readTree(DIR.resolve("examples/device-registration." + variant + ".json").toFile());
            request.put("app", tenant.app());
            request.put("pushToken", variant.equals("ios") ? Fixtures.apnsToken() : Fixtures.fcmToken());
            if (request.has("voipToken")) {
                request.put("voipToken", Fixtures.apnsToken());
            }
            Api.Response answer = api.put("/v1/devices/example-" + variant + "-" + tenant.userId(), tenant.userToken(),
                    request.toString());
            assertThat(answer.status()).as(answer.toString()).isEqualTo(201);
            assertValid("device", answer.json());
        }
        assertValid("device-list", api.get("/v1/devices", tenant.userToken()).json());

        String tokenRequest = Files.readString(DIR.resolve("examples/user-token-request.json"));
        Api.Response token = api.post("/v1/users/someone/tokens", tenant.key(), tokenRequest);
        assertThat(token.status()).isEqualTo(201);
        assertValid("user-token", token.json());

        ObjectNode callRequest = (ObjectNode) Api.JSON.readTree(DIR.resolve("examples/call-request.json").toFile());
        callRequest.put("callee", tenant.userId());
        callRequest.put("callId", "example-" + tenant.userId());
        Api.Response call = api.post("/v1/calls", tenant.key(), callRequest.toString());
        assertThat(call.status()).as(call.toString()).isEqualTo(200);
        assertValid("call", call.json());
        Api.Response ended = api.delete("/v1/calls/example-" + tenant.userId() + "?reason=declined", tenant.key());
        assertThat(ended.status()).as(ended.toString()).isEqualTo(200);
        assertValid("call", ended.json());

        Api.Response preferences = api.put("/v1/preferences", tenant.userToken(),
                Files.readString(DIR.resolve("examples/preferences.json")));
        assertThat(preferences.status()).as(preferences.toString()).isEqualTo(200);
        assertValid("preferences", preferences.json());
        assertValid("preferences", api.get("/v1/preferences", tenant.userToken()).json());
        Api.Response receipt = api.post("/v1/receipts", tenant.userToken(),
                Files.readString(DIR.resolve("examples/receipt-request.json")));
        assertThat(receipt.status()).as("a valid receipt for a notification the user never got").isEqualTo(404);

        String keyRequest = Files.readString(DIR.resolve("examples/app-key-request.json"));
        assertThat(api.post("/v1/apps/" + tenant.app() + "/keys", tenant.key(), keyRequest).status()).isEqualTo(201);

        Api.Response problem = api.put("/v1/devices/x", tenant.userToken(), Map.of("app", tenant.app()));
        assertThat(problem.status()).isEqualTo(400);
        assertValid("problem", problem.json());
        assertValid("problem", api.get("/v1/devices", null).json());
    }

    @Test
    void theServiceValidatesAgainstTheSameSchemasItShips() throws IOException {
        try (Stream<Path> files = Files.list(DIR)) {
            for (Path schema : files.filter(f -> f.toString().endsWith(".schema.json")).toList()) {
                String packaged = new String(getClass().getClassLoader()
                        .getResourceAsStream("device-schema/" + schema.getFileName()).readAllBytes());
                assertThat(packaged).as(schema.toString()).isEqualTo(Files.readString(schema));
            }
        }
    }
}
