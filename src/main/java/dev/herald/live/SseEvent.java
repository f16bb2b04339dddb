package dev.herald.live;

import io.micronaut.http.sse.Event;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.ByteBufUtil;

import java.nio.charset.StandardCharsets;
import java.time.Duration;

/**
 * One Server-Sent Event of a live stream. {@code id} and {@code retryMillis} are optional (null, 0).
 * A stream served by Micronaut gets it as an {@link Event}; one written straight to its connection
 * ({@link StreamChannels}) as an HTTP/1.1 chunk in the same text form: {@code id:}, {@code event:},
 * {@code retry:}, one {@code data:} line per line of data, and a blank line.
 */
record SseEvent(String name, String id, String data, long retryMillis) {

    static SseEvent of(String name, String id, String data) {
        return new SseEvent(name, id, data, 0);
    }

    Event<String> micronaut() {
        Event<String> event = Event.of(data).name(name);
        if (id != null) {
            event = event.id(id);
        }
        return retryMillis > 0 ? event.retry(Duration.ofMillis(retryMillis)) : event;
    }

    /** The event's text, as the client reads it. */
    String text() {
        StringBuilder text = new StringBuilder(data.length() + name.length() + 48);
        if (id != null) {
            text.append("id: ").append(id).append('\n');
        }
        text.append("event: ").append(name).append('\n');
        if (retryMillis > 0) {
            text.append("retry: ").append(retryMillis).append('\n');
        }
        if (data.indexOf('\n') < 0 && data.indexOf('\r') < 0) {
            text.append("data: ").append(data).append('\n');
        } else {
            for (String line : data.split("\r\n|\r|\n", -1)) {
                text.append("data: ").append(line).append('\n');
            }
        }
        return text.append('\n').toString();
    }

    /** The event as one HTTP/1.1 chunk (size line, the text, CRLF). */
    ByteBuf chunk(ByteBufAllocator alloc) {
        return writeChunk(alloc.directBuffer());
    }

    /** Writes the event as one HTTP/1.1 chunk to {@code out}; answers it. */
    ByteBuf writeChunk(ByteBuf out) {
        String text = text();
        int length = ByteBufUtil.utf8Bytes(text);
        out.writeBytes(Integer.toHexString(length).getBytes(StandardCharsets.US_ASCII)).writeShort(CRLF);
        ByteBufUtil.reserveAndWriteUtf8(out, text, length);
        return out.writeShort(CRLF);
    }

    private static final int CRLF = ('\r' << 8) | '\n';
}
