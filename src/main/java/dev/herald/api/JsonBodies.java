package dev.herald.api;

import com.fasterxml.jackson.core.JsonParseException;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;
import com.fasterxml.jackson.databind.node.MissingNode;
import com.networknt.schema.JsonSchema;
import com.networknt.schema.JsonSchemaFactory;
import com.networknt.schema.SchemaLocation;
import com.networknt.schema.SchemaValidatorsConfig;
import com.networknt.schema.SpecVersion;
import com.networknt.schema.ValidationMessage;
import jakarta.inject.Singleton;

import java.io.IOException;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Reads request bodies against the JSON Schemas in {@code device-schema/json/}: the schemas are the
 * one source of truth for what a request may contain, so an unknown field, a wrong type or a value
 * out of range is refused with a 400 naming the field by its path ({@code to.users[3]}), before any
 * record is bound. Thread-safe; schemas are loaded once.
 */
@Singleton
public final class JsonBodies {

    private static final String SCHEMA_BASE = "https://herald.dev/schema/";

    private final ObjectMapper mapper = JsonMapper.builder()
            .enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION)
            .enable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES)
            .enable(DeserializationFeature.FAIL_ON_NULL_FOR_PRIMITIVES)
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
            .enable(JsonParser.Feature.STRICT_DUPLICATE_DETECTION)
            .findAndAddModules()
            .build();
    private final JsonSchemaFactory factory = JsonSchemaFactory.getInstance(SpecVersion.VersionFlag.V202012,
            builder -> builder.schemaMappers(mappers -> mappers.mapPrefix(SCHEMA_BASE, "classpath:device-schema/")));
    private final SchemaValidatorsConfig config = SchemaValidatorsConfig.builder()
            .formatAssertionsEnabled(true)
            .errorMessageKeyword("message")
            .pathType(com.networknt.schema.PathType.JSON_PATH)
            .build();
    private final Map<String, JsonSchema> schemas = new ConcurrentHashMap<>();

    /**
     * Parses {@code body}, validates it against schema {@code schemaName} and binds it to {@code type}.
     *
     * @throws ApiException 400 when the body is not JSON or breaks the schema
     */
    public <T> T read(byte[] body, String schemaName, Class<T> type) {
        return bind(validate(body, schemaName), type);
    }

    /** Parses and validates, answering the JSON tree. */
    public JsonNode validate(byte[] body, String schemaName) {
        JsonNode node = parse(body);
        check(node, schemaName);
        return node;
    }

    /** Validates an already parsed document against {@code schemaName}. */
    public void check(JsonNode node, String schemaName) {
        Set<ValidationMessage> messages = schema(schemaName).validate(node);
        if (!messages.isEmpty()) {
            List<Problem.FieldError> errors = messages.stream()
                    .map(JsonBodies::toFieldError)
                    .sorted(Comparator.comparing(Problem.FieldError::field))
                    .distinct()
                    .toList();
            throw ApiException.invalid(errors);
        }
    }

    public JsonNode parse(byte[] body) {
        if (body == null || body.length == 0) {
            throw new ApiException(ProblemType.MALFORMED_JSON, "A JSON body is required",
                    List.of(new Problem.FieldError("", "a JSON body is required")), Map.of());
        }
        try {
            JsonNode node = mapper.readTree(body);
            return node == null ? MissingNode.getInstance() : node;
        } catch (JsonParseException e) {
            String where = e.getLocation() == null ? ""
                    : " at line " + e.getLocation().getLineNr() + ", column " + e.getLocation().getColumnNr();
            throw new ApiException(ProblemType.MALFORMED_JSON, "The body is not well-formed JSON" + where,
                    List.of(new Problem.FieldError("", "not well-formed JSON" + where)), Map.of());
        } catch (IOException e) {
            throw new ApiException(ProblemType.MALFORMED_JSON, "The body is not well-formed JSON",
                    List.of(new Problem.FieldError("", "not well-formed JSON")), Map.of());
        }
    }

    public <T> T bind(JsonNode node, Class<T> type) {
        try {
            return mapper.treeToValue(node, type);
        } catch (IOException | IllegalArgumentException e) {
            // the schema admits only what the record can hold; reaching here is a schema/record mismatch
            throw new IllegalStateException("Request schema and " + type.getSimpleName() + " disagree", e);
        }
    }

    public ObjectMapper mapper() {
        return mapper;
    }

    private JsonSchema schema(String name) {
        return schemas.computeIfAbsent(name, n ->
                factory.getSchema(SchemaLocation.of(SCHEMA_BASE + n + ".schema.json"), config));
    }

    static Problem.FieldError toFieldError(ValidationMessage message) {
        String path = message.getInstanceLocation().toString();
        String field = path.equals("$") ? "" : path.startsWith("$.") ? path.substring(2) : path.substring(1);
        String property = message.getProperty();
        if (property != null && ("required".equals(message.getType()) || "additionalProperties".equals(message.getType()))) {
            field = field.isEmpty() ? property : field + "." + property;
        }
        String text = message.getError() != null ? message.getError() : message.getMessage();
        if ("additionalProperties".equals(message.getType())) {
            text = "is not a known field";
        } else if ("required".equals(message.getType())) {
            text = "is required";
        }
        return new Problem.FieldError(field, text);
    }
}
