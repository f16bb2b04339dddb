package dev.herald.auth;

import io.micronaut.context.annotation.Value;
import jakarta.inject.Singleton;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import javax.crypto.AEADBadTagException;
import javax.crypto.Cipher;
import javax.crypto.spec.GCMParameterSpec;
import javax.crypto.spec.SecretKeySpec;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.GeneralSecurityException;
import java.security.MessageDigest;
import java.util.Base64;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Seals secrets kept in PostgreSQL (APNs keys, service accounts, webhook secrets, the generated JWT
 * secret) with AES-256-GCM under the master key: {@code HERALD_MASTER_KEY} (32 bytes, base64), else,
 * with the embedded PostgreSQL, a key generated once and kept in {@code HERALD_DATA_DIR/master.key}
 * (mode 600). With an external database the key must be configured: nodes that each made their own
 * could not read each other's secrets. A sealed value is {@code enc:v1:<key id>:<base64(iv | ciphertext
 * | tag)>}, bound to what it is (its {@code context}, e.g. {@code app/<id>/apns.privateKey}), so a value
 * copied to another app or field does not open. Rotation: the new key in {@code HERALD_MASTER_KEY}, the
 * old ones in {@code HERALD_MASTER_KEY_PREVIOUS} (comma-separated) until {@link SecretRotation} has
 * sealed everything again under the new one. Values written before sealing existed open as they are.
 * Thread-safe. Never logs a key or a secret.
 */
@Singleton
public class SecretBox {

    private static final Logger LOG = LoggerFactory.getLogger(SecretBox.class);
    private static final String PREFIX = "enc:v1:";
    private static final int KEY_BYTES = 32;
    private static final int IV_BYTES = 12;   // NIST SP 800-38D: 96-bit IVs for GCM
    private static final int TAG_BITS = 128;

    private final String currentId;
    private final Map<String, SecretKeySpec> keys = new LinkedHashMap<>();

    SecretBox(@Value("${herald.master-key:}") String configured,
              @Value("${herald.master-key-previous:}") String previous,
              @Value("${database.url:}") String externalDatabase,
              @Value("${herald.data-dir:./herald-data}") String dataDir) {
        byte[] current;
        if (configured != null && !configured.isBlank()) {
            current = decode(configured, "HERALD_MASTER_KEY");
            LOG.info("Secrets at rest: sealed with HERALD_MASTER_KEY");
        } else if (externalDatabase != null && !externalDatabase.isBlank()) {
            throw new IllegalStateException("HERALD_MASTER_KEY is required with an external database (DATABASE_URL): "
                    + "every node must seal and open secrets with the same key; generate one with: openssl rand -base64 32");
        } else {
            current = keptKey(Path.of(dataDir).resolve("master.key"));
        }
        currentId = add(current);
        if (previous != null) {
            for (String old : previous.split(",")) {
                if (!old.isBlank()) {
                    add(decode(old.trim(), "HERALD_MASTER_KEY_PREVIOUS"));
                }
            }
        }
    }

    /** For tests: a box with these keys, the first current. */
    static SecretBox of(byte[] current, byte[]... previous) {
        return new SecretBox(current, previous);
    }

    private SecretBox(byte[] current, byte[]... previous) {
        currentId = add(current);
        for (byte[] old : previous) {
            add(old);
        }
    }

    private String add(byte[] key) {
        String id = keyId(key);
        keys.putIfAbsent(id, new SecretKeySpec(key, "AES"));
        return id;
    }

    /** Seals {@code plaintext} under the current key, bound to {@code context}. */
    public String seal(String plaintext, String context) {
        try {
            byte[] iv = Secrets.randomBytes(IV_BYTES);
            Cipher cipher = Cipher.getInstance("AES/GCM/NoPadding");
            cipher.init(Cipher.ENCRYPT_MODE, keys.get(currentId), new GCMParameterSpec(TAG_BITS, iv));
            cipher.updateAAD(context.getBytes(StandardCharsets.UTF_8));
            byte[] sealed = cipher.doFinal(plaintext.getBytes(StandardCharsets.UTF_8));
            return PREFIX + currentId + ":" + Base64.getEncoder().encodeToString(
                    ByteBuffer.allocate(iv.length + sealed.length).put(iv).put(sealed).array());
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("AES-GCM is part of every JDK", e);
        }
    }

    /**
     * Opens a sealed value (one written before sealing existed is answered as it is). Fails when the
     * value was sealed under a key this node does not have, for another context, or was altered.
     */
    public String open(String stored, String context) {
        if (!isSealed(stored)) {
            return stored;
        }
        String rest = stored.substring(PREFIX.length());
        int colon = rest.indexOf(':');
        SecretKeySpec key = colon < 0 ? null : keys.get(rest.substring(0, colon));
        if (key == null) {
            throw new IllegalStateException("A secret of " + context + " is sealed under a master key this node does "
                    + "not have: set that key in HERALD_MASTER_KEY_PREVIOUS");
        }
        try {
            byte[] all = Base64.getDecoder().decode(rest.substring(colon + 1));
            Cipher cipher = Cipher.getInstance("AES/GCM/NoPadding");
            cipher.init(Cipher.DECRYPT_MODE, key, new GCMParameterSpec(TAG_BITS, all, 0, IV_BYTES));
            cipher.updateAAD(context.getBytes(StandardCharsets.UTF_8));
            return new String(cipher.doFinal(all, IV_BYTES, all.length - IV_BYTES), StandardCharsets.UTF_8);
        } catch (AEADBadTagException e) {
            throw new IllegalStateException("A secret of " + context + " does not open: altered, or moved from elsewhere");
        } catch (GeneralSecurityException | IllegalArgumentException e) {
            throw new IllegalStateException("A secret of " + context + " is not a sealed value", e);
        }
    }

    public static boolean isSealed(String stored) {
        return stored != null && stored.startsWith(PREFIX);
    }

    /** Whether {@code stored} is sealed under the current key (else {@link SecretRotation} seals it again). */
    public boolean isCurrent(String stored) {
        return stored != null && stored.startsWith(PREFIX + currentId + ":");
    }

    private static String keyId(byte[] key) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(key), 0, 4);
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException(e);
        }
    }

    private static byte[] decode(String configured, String name) {
        byte[] key;
        try {
            key = Base64.getDecoder().decode(configured.trim());
        } catch (IllegalArgumentException e) {
            key = new byte[0];
        }
        if (key.length != KEY_BYTES) {
            throw new IllegalStateException(name + " must be 32 bytes in base64; generate one with: openssl rand -base64 32");
        }
        return key;
    }

    /** The embedded default's key: read from {@code file}, or made once (atomically, so concurrent starts agree). */
    private static byte[] keptKey(Path file) {
        try {
            if (!Files.exists(file)) {
                Files.createDirectories(file.getParent());
                Path temp = Files.createTempFile(file.getParent(), "master", ".tmp",
                        PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------")));
                Files.writeString(temp, Base64.getEncoder().encodeToString(Secrets.randomBytes(KEY_BYTES)));
                try {
                    // a link, unlike a rename, never replaces: of nodes starting at once, one key wins
                    Files.createLink(file, temp);
                    LOG.info("Secrets at rest: generated a master key in {} (back it up with the data)", file);
                } catch (FileAlreadyExistsException e) {
                    // another node made it first: use theirs
                } finally {
                    Files.deleteIfExists(temp);
                }
            }
            return decode(Files.readString(file), file.toString());
        } catch (IOException e) {
            throw new UncheckedIOException("Could not keep the master key in " + file + "; set HERALD_MASTER_KEY", e);
        }
    }
}
