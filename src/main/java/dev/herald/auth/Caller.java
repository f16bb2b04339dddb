package dev.herald.auth;

import dev.herald.api.ApiException;
import dev.herald.api.ProblemType;
import io.micronaut.security.authentication.Authentication;

import java.util.Set;

/**
 * Who is calling, as proven by the request's bearer credential: the operator's admin key, one app's
 * key, or an end user's JWT. The {@code require…} methods answer 403 for a credential of the wrong
 * kind or scope; a missing or invalid credential never gets this far (401).
 */
public sealed interface Caller {

    /** The Authentication attribute under which key-based callers are carried. */
    String ATTRIBUTE = "herald.caller";

    record Admin() implements Caller {
    }

    /**
     * An app's backend; {@code test} keys run everything but hand nothing to a gateway. {@code perSecond}
     * and {@code burst}: the app's own rate limit for its keys, null for the deployment's.
     */
    record AppKey(String keyId, String appId, boolean test, Set<Scope> scopes,
                  @io.micronaut.core.annotation.Nullable Double perSecond,
                  @io.micronaut.core.annotation.Nullable Integer burst) implements Caller {
        public AppKey {
            scopes = Set.copyOf(scopes);
        }

        public AppKey(String keyId, String appId, boolean test, Set<Scope> scopes) {
            this(keyId, appId, test, scopes, null, null);
        }
    }

    /** An end user, by the {@code sub} of their token. */
    record User(String userId) implements Caller {
    }

    static Caller of(Authentication authentication) {
        if (authentication == null) {
            throw new ApiException(ProblemType.UNAUTHORIZED, "A valid credential is required");
        }
        Object caller = authentication.getAttributes().get(ATTRIBUTE);
        if (caller instanceof Caller known) {
            return known;
        }
        String userId = authentication.getName();
        if (!UserIds.isValid(userId)) {
            throw new ApiException(ProblemType.UNAUTHORIZED, "The token's subject is not a valid user id");
        }
        return new User(userId);
    }

    default User requireUser() {
        if (this instanceof User user) {
            return user;
        }
        throw ApiException.forbidden("This endpoint takes a user token");
    }

    default AppKey requireScope(Scope scope) {
        if (this instanceof AppKey key) {
            if (key.scopes().contains(scope)) {
                return key;
            }
            throw ApiException.forbidden("This app key lacks the '" + scope.wire() + "' scope");
        }
        throw ApiException.forbidden("This endpoint takes an app key with the '" + scope.wire() + "' scope");
    }

    default Admin requireAdmin() {
        if (this instanceof Admin admin) {
            return admin;
        }
        throw ApiException.forbidden("This endpoint takes the admin key");
    }

    /** The admin key, or an app key with scope {@code admin} on this very app. */
    default void requireAppAdmin(String appId) {
        if (this instanceof Admin) {
            return;
        }
        if (this instanceof AppKey key) {
            if (!key.appId().equals(appId)) {
                throw ApiException.forbidden("This app key belongs to another app");
            }
            if (!key.scopes().contains(Scope.ADMIN)) {
                throw ApiException.forbidden("This app key lacks the 'admin' scope");
            }
            return;
        }
        throw ApiException.forbidden("This endpoint takes the admin key or an app key with the 'admin' scope");
    }
}
