package dev.herald.auth;

import org.junit.jupiter.api.Test;

import java.util.Base64;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** Sealing secrets at rest: round trip, binding to their place, tampering, rotation, and values from before. */
class SecretBoxTest {

    private final byte[] oldKey = Secrets.randomBytes(32);
    private final byte[] newKey = Secrets.randomBytes(32);

    @Test
    void aSealedValueOpensOnlyWhereItWasSealedForAndUnaltered() {
        SecretBox box = SecretBox.of(newKey);
        String sealed = box.seal("-----BEGIN PRIVATE KEY-----\nMIG...", "app/a/apns.privateKey");
        assertThat(sealed).startsWith("enc:v1:").doesNotContain("PRIVATE");
        assertThat(box.seal("same", "c")).as("a fresh IV each time").isNotEqualTo(box.seal("same", "c"));
        assertThat(box.open(sealed, "app/a/apns.privateKey")).isEqualTo("-----BEGIN PRIVATE KEY-----\nMIG...");
        assertThat(box.isCurrent(sealed)).isTrue();

        assertThatThrownBy(() -> box.open(sealed, "app/b/apns.privateKey")).hasMessageContaining("does not open");
        byte[] raw = Base64.getDecoder().decode(sealed.substring(sealed.lastIndexOf(':') + 1));
        raw[raw.length - 1] ^= 1;
        String altered = sealed.substring(0, sealed.lastIndexOf(':') + 1) + Base64.getEncoder().encodeToString(raw);
        assertThatThrownBy(() -> box.open(altered, "app/a/apns.privateKey")).hasMessageContaining("does not open")
                .hasMessageNotContaining("PRIVATE");
    }

    @Test
    void afterARotationOldValuesOpenWithThePreviousKeyAndAreNotCurrent() {
        String sealedBefore = SecretBox.of(oldKey).seal("whsec-1", "app/a/webhook.secret");
        SecretBox rotated = SecretBox.of(newKey, oldKey);
        assertThat(rotated.open(sealedBefore, "app/a/webhook.secret")).isEqualTo("whsec-1");
        assertThat(rotated.isCurrent(sealedBefore)).isFalse();
        assertThat(rotated.isCurrent(rotated.seal("whsec-1", "app/a/webhook.secret"))).isTrue();

        assertThatThrownBy(() -> SecretBox.of(newKey).open(sealedBefore, "app/a/webhook.secret"))
                .hasMessageContaining("HERALD_MASTER_KEY_PREVIOUS");
    }

    @Test
    void valuesStoredBeforeSealingOpenAsTheyAre() {
        SecretBox box = SecretBox.of(newKey);
        assertThat(box.open("plain-secret", "app/a/webhook.secret")).isEqualTo("plain-secret");
        assertThat(box.isCurrent("plain-secret")).isFalse();
    }
}
