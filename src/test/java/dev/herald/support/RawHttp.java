package dev.herald.support;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * HTTP/1.1 written and read byte by byte over a plain socket, for what an HTTP client library would
 * hide: several requests pipelined on one connection, {@code Connection: close}, the exact headers.
 */
public final class RawHttp {

    private RawHttp() {
    }

    /** One answer: its status, its headers (names in lower case) and its body. */
    public record Raw(int status, Map<String, String> headers, String body) {
    }

    /** A request with a bearer token and, when {@code body} is not null, a JSON body. */
    public static byte[] request(String method, String path, String token, byte[] body) {
        StringBuilder head = new StringBuilder(method).append(' ').append(path).append(" HTTP/1.1\r\nHost: herald\r\n")
                .append("Authorization: Bearer ").append(token).append("\r\n");
        if (body != null) {
            head.append("Content-Type: application/json\r\nContent-Length: ").append(body.length).append("\r\n");
        }
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.writeBytes(head.append("\r\n").toString().getBytes(StandardCharsets.US_ASCII));
        if (body != null) {
            out.writeBytes(body);
        }
        return out.toByteArray();
    }

    /** Sends {@code requests} at once on one new connection to {@code host:port} and reads their answers. */
    public static List<Raw> pipelined(String host, int port, byte[]... requests) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        for (byte[] request : requests) {
            out.writeBytes(request);
        }
        try (Socket socket = new Socket(host, port)) {
            socket.setSoTimeout(30_000);
            socket.getOutputStream().write(out.toByteArray());
            return readResponses(socket.getInputStream(), requests.length);
        }
    }

    /** Reads {@code count} HTTP/1.1 responses with a {@code content-length} each. */
    public static List<Raw> readResponses(InputStream in, int count) throws IOException {
        List<Raw> responses = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            String statusLine = line(in);
            Map<String, String> headers = new LinkedHashMap<>();
            for (String header = line(in); !header.isEmpty(); header = line(in)) {
                int colon = header.indexOf(':');
                headers.put(header.substring(0, colon).trim().toLowerCase(Locale.ROOT), header.substring(colon + 1).trim());
            }
            byte[] body = in.readNBytes(Integer.parseInt(headers.getOrDefault("content-length", "0")));
            responses.add(new Raw(Integer.parseInt(statusLine.split(" ")[1]), headers,
                    new String(body, StandardCharsets.UTF_8)));
        }
        return responses;
    }

    private static String line(InputStream in) throws IOException {
        ByteArrayOutputStream line = new ByteArrayOutputStream();
        for (int b = in.read(); b != '\n'; b = in.read()) {
            if (b < 0) {
                throw new IOException("the connection ended mid-response: " + line);
            }
            if (b != '\r') {
                line.write(b);
            }
        }
        return line.toString(StandardCharsets.US_ASCII);
    }
}
