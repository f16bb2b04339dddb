package dev.herald.devices;

import com.fasterxml.jackson.annotation.JsonProperty;

import java.util.Locale;

/** The two mobile platforms and the gateway that reaches each. */
public enum Platform {
    @JsonProperty("ios") IOS,
    @JsonProperty("android") ANDROID;

    public String wire() {
        return name().toLowerCase(Locale.ROOT);
    }

    public static Platform fromWire(String value) {
        return Platform.valueOf(value.toUpperCase(Locale.ROOT));
    }
}
