package dev.herald.webhooks;

import java.net.InetAddress;
import java.net.URI;
import java.net.UnknownHostException;
import java.util.Optional;

/**
 * Whether a webhook URL points into the private network (server-side request forgery): loopback,
 * RFC 1918 and IPv6 unique local, link-local (cloud metadata at 169.254.169.254), carrier-grade NAT
 * (100.64.0.0/10), "this network" (0.0.0.0/8), benchmarking, reserved, wildcard and multicast
 * addresses, and IPv4 ones carried in IPv6 (mapped, compatible, NAT64, 6to4). Checked when an app sets
 * its webhook and again before its deliveries (the answer kept 30 s), against the addresses the host
 * resolves to then, so a name that later resolves inward is refused too. Not a guarantee against a
 * name that changes its answer between the check and the connection (DNS rebinding within the JVM's
 * own 30 s address cache): where that matters, send webhooks through an egress proxy.
 */
public final class WebhookTargets {

    private WebhookTargets() {
    }

    /** Why {@code url} may not be called, or empty when every address of its host is public. */
    public static Optional<String> refusal(String url) {
        String host;
        try {
            host = URI.create(url).getHost();
        } catch (IllegalArgumentException e) {
            host = null;
        }
        if (host == null) {
            return Optional.of("not_absolute");
        }
        try {
            for (InetAddress address : InetAddress.getAllByName(host)) {
                if (isPrivate(address)) {
                    return Optional.of("private_address");
                }
            }
            return Optional.empty();
        } catch (UnknownHostException e) {
            return Optional.of("unresolvable");
        }
    }

    static boolean isPrivate(InetAddress address) {
        if (address.isLoopbackAddress() || address.isSiteLocalAddress() || address.isLinkLocalAddress()
                || address.isAnyLocalAddress() || address.isMulticastAddress()) {
            return true;
        }
        byte[] b = address.getAddress();
        if (b.length == 4) {
            return isPrivateV4(b, 0);
        }
        // unique local fc00::/7; IPv4 inside IPv6: compatible ::a.b.c.d, NAT64 64:ff9b::/96, 6to4 2002::/16
        if ((b[0] & 0xfe) == 0xfc) {
            return true;
        }
        boolean compatible = true;
        for (int i = 0; i < 12; i++) {
            compatible &= b[i] == 0;
        }
        boolean nat64 = b[0] == 0 && b[1] == 0x64 && (b[2] & 0xff) == 0xff && (b[3] & 0xff) == 0x9b;
        for (int i = 4; nat64 && i < 12; i++) {
            nat64 = b[i] == 0;
        }
        if (compatible || nat64) {
            return isPrivateV4(b, 12);
        }
        if (b[0] == 0x20 && b[1] == 0x02) {
            return isPrivateV4(b, 2);
        }
        return false;
    }

    /**
     * The IPv4 address at {@code b[at..at+3]}: private, loopback, link-local, "this network" 0/8,
     * carrier-grade NAT 100.64/10, IETF 192.0.0/24, benchmarking 198.18/15, multicast and reserved 224/3.
     */
    private static boolean isPrivateV4(byte[] b, int at) {
        int a0 = b[at] & 0xff;
        int a1 = b[at + 1] & 0xff;
        int a2 = b[at + 2] & 0xff;
        return a0 == 0 || a0 == 10 || a0 == 127 || a0 >= 224
                || (a0 == 100 && (a1 & 0xc0) == 64)
                || (a0 == 169 && a1 == 254)
                || (a0 == 172 && (a1 & 0xf0) == 16)
                || (a0 == 192 && a1 == 168)
                || (a0 == 192 && a1 == 0 && a2 == 0)
                || (a0 == 198 && (a1 & 0xfe) == 18);
    }
}
