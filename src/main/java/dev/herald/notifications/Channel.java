package dev.herald.notifications;

/** The four ways a notification reaches a user, in the order the router tries them. */
public enum Channel {
    IN_APP("inApp"), LIVE("live"), PUSH("push"), EMAIL("email");

    private final String wire;

    Channel(String wire) {
        this.wire = wire;
    }

    public String wire() {
        return wire;
    }

    public static Channel fromWire(String wire) {
        for (Channel channel : values()) {
            if (channel.wire.equals(wire)) {
                return channel;
            }
        }
        throw new IllegalArgumentException("no channel " + wire);
    }
}
