package dev.herald.webhooks;

import java.net.InetAddress;
import java.net.URI;
import java.net.UnknownHostException;
import java.util.Optional;

/**
 * Whether a webhook URL points into the private network (server-side request forgery): loopback,
 * RFC 1918 and IPv6 unique local, link-local (cloud metadata at 169.254.169.254), carrier-grade NAT
 * (100.64.0.0/10), "this network" (0.0.0.0/8), wildcard and multicast addresses. Checked when an app
 * sets its webhook and again before every delivery, against the addresses the host resolves to then,
 * so a name that later resolves inward is refused too.
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
            return b[0] == 0 || ((b[0] & 0xff) == 100 && (b[1] & 0xc0) == 64);
        }
        return (b[0] & 0xfe) == 0xfc;
    }
}
