package dev.herald.apns;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.herald.delivery.Priority;
import dev.herald.delivery.PushContent;
import dev.herald.delivery.PushKind;
import org.junit.jupiter.api.Test;

import java.time.Instant;
import java.util.Map;

import static org.assertj.core.api.Assertions.assertThat;

class ApnsPayloadsTest {

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Instant EXPIRES = Instant.parse("2030-01-01T00:00:00Z");

    @Test
    void alertWithOnlyATitleHasNoBodyBadgeOrSound() throws Exception {
        PushContent c = content(PushKind.ALERT, "Hi", null, Map.of(), null, null, null);

        assertThat(JSON.readTree(ApnsPayloads.payload(c)))
                .isEqualTo(JSON.readTree("{\"aps\":{\"alert\":{\"title\":\"Hi\"}}}"));
    }

    @Test
    void dataKeysSitBesideApsInKeyOrderAndLinkWinsOverADataLink() {
        PushContent c = content(PushKind.ALERT, "Hi", "there", Map.of("b", "2", "a", "1", "link", "from-data"),
                "herald://x", 0, null);

        assertThat(ApnsPayloads.payload(c)).isEqualTo(
                "{\"aps\":{\"alert\":{\"title\":\"Hi\",\"body\":\"there\"},\"badge\":0},\"a\":\"1\",\"b\":\"2\",\"link\":\"herald://x\"}");
    }

    @Test
    void aDataKeyNamedApsCannotReplaceApnsDictionary() throws Exception {
        PushContent c = content(PushKind.BACKGROUND, null, null, Map.of("aps", "{}", "k", "v"), null, null, "ignored.caf");

        assertThat(JSON.readTree(ApnsPayloads.payload(c)))
                .isEqualTo(JSON.readTree("{\"aps\":{\"content-available\":1},\"k\":\"v\"}"));
    }

    @Test
    void voipCarriesOnlyTheCustomKeys() throws Exception {
        PushContent c = content(PushKind.VOIP, null, "ignored", Map.of("call", "c-1"), "herald://call/c-1", 4, "ring.caf");

        assertThat(JSON.readTree(ApnsPayloads.payload(c)))
                .isEqualTo(JSON.readTree("{\"aps\":{},\"call\":\"c-1\",\"link\":\"herald://call/c-1\"}"));
    }

    @Test
    void sizeCountsUtf8Bytes() {
        PushContent c = content(PushKind.ALERT, "é", null, Map.of(), null, null, null);

        assertThat(ApnsPayloads.payload(c)).hasSize(31);
        assertThat(ApnsPayloads.size(c)).isEqualTo(32);
    }

    @Test
    void voipMayBeLargerThanOtherPushes() {
        assertThat(ApnsPayloads.maxBytes(PushKind.ALERT)).isEqualTo(4096);
        assertThat(ApnsPayloads.maxBytes(PushKind.BACKGROUND)).isEqualTo(4096);
        assertThat(ApnsPayloads.maxBytes(PushKind.VOIP)).isEqualTo(5120);
    }

    private static PushContent content(PushKind kind, String title, String body, Map<String, String> data, String link,
                                       Integer badge, String sound) {
        return new PushContent(kind, title, body, data, link, badge, sound, null, Priority.NORMAL, EXPIRES);
    }
}
