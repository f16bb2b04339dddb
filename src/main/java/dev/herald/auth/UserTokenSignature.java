package dev.herald.auth;

import com.nimbusds.jose.JOSEException;
import com.nimbusds.jose.JWSAlgorithm;
import com.nimbusds.jwt.JWTClaimsSet;
import com.nimbusds.jwt.SignedJWT;
import io.micronaut.security.token.jwt.signature.SignatureGeneratorConfiguration;
import io.micronaut.security.token.jwt.signature.secret.SecretSignature;
import io.micronaut.security.token.jwt.signature.secret.SecretSignatureConfiguration;
import jakarta.inject.Singleton;

import java.nio.charset.StandardCharsets;

/**
 * The HS256 signature of Herald's own user tokens, as a signature bean: micronaut-security-jwt
 * verifies incoming JWTs against every signature bean, so these tokens are accepted beside those of
 * an identity provider the deployment configures ({@code micronaut.security.token.jwt.signatures.*}).
 */
@Singleton
class UserTokenSignature implements SignatureGeneratorConfiguration {

    private final SecretSignature signature;

    UserTokenSignature(JwtSecret secret) {
        SecretSignatureConfiguration configuration = new SecretSignatureConfiguration("herald");
        configuration.setJwsAlgorithm(JWSAlgorithm.HS256);
        configuration.setSecret(new String(secret.bytes(), StandardCharsets.UTF_8));
        this.signature = new SecretSignature(configuration);
    }

    @Override
    public SignedJWT sign(JWTClaimsSet claims) throws JOSEException {
        return signature.sign(claims);
    }

    @Override
    public String supportedAlgorithmsMessage() {
        return signature.supportedAlgorithmsMessage();
    }

    @Override
    public boolean supports(JWSAlgorithm algorithm) {
        return signature.supports(algorithm);
    }

    @Override
    public boolean verify(SignedJWT jwt) throws JOSEException {
        return signature.verify(jwt);
    }
}
