package dev.herald.delivery;

/**
 * What kind of push a gateway is asked to send: an alert the user sees, a silent background update
 * (a notification without title), or a VoIP wake-up for an incoming call (APNs PushKit; FCM data-only
 * at high priority).
 */
public enum PushKind {
    ALERT,
    BACKGROUND,
    VOIP
}
