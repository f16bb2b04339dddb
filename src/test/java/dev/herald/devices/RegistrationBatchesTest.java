package dev.herald.devices;

import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.concurrent.CompletableFuture;

import static org.assertj.core.api.Assertions.assertThat;

class RegistrationBatchesTest {

    private static RegistrationWriter.Pending pending(String installation, String token, String voip) {
        DeviceRegistration body = new DeviceRegistration("app", Platform.IOS, token, voip, null, null, null, null);
        return new RegistrationWriter.Pending(new DeviceStore.Registration("u", installation, body), new CompletableFuture<>(),
                null);
    }

    @Test
    void keepsRepeatsOfAnInstallationOrTokenInLaterBatchesInOrder() {
        List<RegistrationWriter.Pending> input = List.of(pending("a", "t1", null), pending("b", "t2", "v1"),
                pending("a", "t3", null), pending("c", "t2", null), pending("d", "t4", "v1"), pending("a", "t5", null),
                pending("e", "t6", null));

        List<List<RegistrationWriter.Pending>> batches = RegistrationWriter.withoutRepeats(input);

        assertThat(batches).hasSize(3);
        assertThat(batches.get(0)).containsExactly(input.get(0), input.get(1), input.get(6));
        assertThat(batches.get(1)).containsExactly(input.get(2), input.get(3), input.get(4));
        assertThat(batches.get(2)).containsExactly(input.get(5));
    }
}
