package dev.herald.auth;

/** User ids: 1 to 128 characters, no control characters and no {@code /} (API.md, "Limits"). */
public final class UserIds {

    public static final int MAX_LENGTH = 128;

    private UserIds() {
    }

    public static boolean isValid(String userId) {
        if (userId == null || userId.isEmpty() || userId.length() > MAX_LENGTH) {
            return false;
        }
        for (int i = 0; i < userId.length(); i++) {
            char c = userId.charAt(i);
            if (Character.isISOControl(c) || c == '/' || Character.isSurrogate(c) && !validSurrogate(userId, i)) {
                return false;
            }
        }
        return true;
    }

    private static boolean validSurrogate(String s, int i) {
        char c = s.charAt(i);
        if (Character.isHighSurrogate(c)) {
            return i + 1 < s.length() && Character.isLowSurrogate(s.charAt(i + 1));
        }
        return i > 0 && Character.isHighSurrogate(s.charAt(i - 1));
    }
}
