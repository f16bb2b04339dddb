package dev.herald.calls;

import com.fasterxml.jackson.databind.JsonNode;

/**
 * {@code POST /v1/calls}, as read from a body that passed {@code call-request.schema.json} (which holds
 * every rule: callId pattern, callee and caller id limits, name length, ringSeconds 5 to 120).
 *
 * @param callerName what the callee's phone shows; {@code null} when the caller sent none
 */
record CallRequest(String callId, String callee, String callerId, String callerName, boolean video, int ringSeconds) {

    static final int DEFAULT_RING_SECONDS = 30;

    static CallRequest of(JsonNode body) {
        JsonNode caller = body.path("caller");
        return new CallRequest(body.path("callId").asText(), body.path("callee").asText(), caller.path("id").asText(),
                caller.hasNonNull("name") ? caller.path("name").asText() : null, body.path("video").asBoolean(false),
                body.path("ringSeconds").asInt(DEFAULT_RING_SECONDS));
    }
}
