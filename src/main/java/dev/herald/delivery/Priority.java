package dev.herald.delivery;

import com.fasterxml.jackson.annotation.JsonProperty;

/**
 * How urgently a push should reach the device. {@code HIGH} is APNs priority 10 and FCM {@code HIGH}
 * (and ignores quiet hours); {@code NORMAL} is APNs priority 5 and FCM {@code NORMAL}.
 */
public enum Priority {
    @JsonProperty("normal") NORMAL,
    @JsonProperty("high") HIGH
}
