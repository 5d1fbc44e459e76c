"""Token verification with PyJWT: who is calling, and which topics they may read."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
from aws_lambda_powertools.utilities import parameters

from realtime.core.contract import MAX_TOPICS_PER_TOKEN
from realtime.core.errors import ConfigError
from realtime.core.settings import TokenSettings
from realtime.core.topics import topics_for_claims

HMAC_ALGORITHMS = ["HS256"]
# Never HS*: a public key must not be usable as an HMAC secret (algorithm confusion).
ASYMMETRIC_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]
LEEWAY_SECONDS = 10
SECRET_MAX_AGE_SECONDS = 300  # a rotated secret is picked up within 5 minutes
JWKS_CACHE_SECONDS = 300
MIN_SECRET_BYTES = 32  # RFC 7518: an HS256 key has at least 256 bits
MAX_TOKEN_LENGTH = 8192

KeyResolver = Callable[[str], Any]


class InvalidToken(Exception):
    """The token is missing or must not be trusted.

    `reason` is a short code safe to log and to count; `detail` is PyJWT's
    message, for logs only.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason if not detail else f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Principal:
    user_id: str
    groups: tuple[str, ...]
    topics: tuple[str, ...]


_REASONS: list[tuple[type[Exception], str]] = [
    (jwt.ExpiredSignatureError, "expired"),
    (jwt.ImmatureSignatureError, "not_yet_valid"),
    (jwt.InvalidSignatureError, "bad_signature"),
    (jwt.InvalidAlgorithmError, "unsupported_algorithm"),
    (jwt.InvalidIssuerError, "invalid_issuer"),
    (jwt.InvalidAudienceError, "invalid_audience"),
    (jwt.MissingRequiredClaimError, "missing_claim"),
    (jwt.exceptions.InvalidSubjectError, "invalid_claims"),
    (jwt.PyJWKClientError, "unknown_key"),
    (jwt.DecodeError, "malformed"),
]


def _reason_for(error: jwt.PyJWTError) -> str:
    for error_type, reason in _REASONS:
        if isinstance(error, error_type):
            return reason
    return "invalid_token"


def _string_list(claims: dict[str, Any], name: str) -> tuple[str, ...]:
    value = claims.get(name, [])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidToken("invalid_claims", f"claim {name!r} must be a list of strings")
    return tuple(value)


class TokenVerifier:
    """Verifies a JWT and turns its claims into a Principal.

    Algorithms are pinned per mode, so `alg: none` and HS/RS confusion fail.
    Raises InvalidToken for anything the caller did wrong; infrastructure
    failures (secret or JWKS unreachable) propagate as other exceptions.
    """

    def __init__(
        self,
        *,
        algorithms: list[str],
        resolve_key: KeyResolver,
        issuer: str | None = None,
        audience: str | None = None,
        leeway: int = LEEWAY_SECONDS,
        max_topics: int = MAX_TOPICS_PER_TOKEN,
    ) -> None:
        self._algorithms = algorithms
        self._resolve_key = resolve_key
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway
        self._max_topics = max_topics

    @classmethod
    def from_settings(cls, settings: TokenSettings, *, max_topics: int) -> TokenVerifier:
        """`max_topics`: a token granting more topics is refused (the module's max_topics_per_token)."""
        if settings.mode == "jwks":
            jwks = jwt.PyJWKClient(settings.jwks_url or "", cache_jwk_set=True, lifespan=JWKS_CACHE_SECONDS, timeout=5)
            return cls(
                algorithms=ASYMMETRIC_ALGORITHMS,
                resolve_key=jwks.get_signing_key_from_jwt,
                issuer=settings.issuer,
                audience=settings.audience,
                max_topics=max_topics,
            )
        if settings.secret_ssm_parameter:
            name = settings.secret_ssm_parameter

            def fetch_secret() -> Any:
                return parameters.get_parameter(name, decrypt=True, max_age=SECRET_MAX_AGE_SECONDS)

        else:
            arn = settings.secret_arn or ""

            def fetch_secret() -> Any:
                return parameters.get_secret(arn, max_age=SECRET_MAX_AGE_SECONDS)

        return cls(
            algorithms=HMAC_ALGORITHMS,
            resolve_key=lambda _token: _checked_secret(fetch_secret()),
            issuer=settings.issuer,
            audience=settings.audience,
            max_topics=max_topics,
        )

    def verify(self, token: str | None) -> Principal:
        if not token:
            raise InvalidToken("missing_token")
        if len(token) > MAX_TOKEN_LENGTH:
            raise InvalidToken("malformed", f"token longer than {MAX_TOKEN_LENGTH} characters")
        try:
            # Check the algorithm before any key lookup, so junk tokens cost no JWKS fetch.
            algorithm = jwt.get_unverified_header(token).get("alg")
            if algorithm not in self._algorithms:
                raise InvalidToken("unsupported_algorithm", f"alg {algorithm!r} is not accepted")
            claims = jwt.decode(
                token,
                self._resolve_key(token),
                algorithms=self._algorithms,
                issuer=self._issuer,
                audience=self._audience,
                leeway=self._leeway,
                options={"require": ["exp", "sub"]},
            )
        except jwt.PyJWKClientConnectionError:
            raise  # the JWKS endpoint is down: not the caller's fault
        except jwt.PyJWTError as error:
            raise InvalidToken(_reason_for(error), str(error)) from None
        return self._principal(claims)

    def _principal(self, claims: dict[str, Any]) -> Principal:
        groups = _string_list(claims, "groups")
        _string_list(claims, "topics")
        try:
            topics = topics_for_claims(claims)
        except ValueError as error:
            raise InvalidToken("invalid_claims", str(error)) from None
        if len(topics) > self._max_topics:
            raise InvalidToken("too_many_topics", f"token grants {len(topics)} topics; at most {self._max_topics}")
        return Principal(user_id=claims["sub"], groups=groups, topics=tuple(topics))


def _checked_secret(secret: str | bytes) -> bytes:
    key = secret.encode() if isinstance(secret, str) else secret
    if len(key) < MIN_SECRET_BYTES:
        # An empty or short secret would make tokens forgeable: refuse to run with it.
        raise ConfigError(f"the HS256 token secret must be at least {MIN_SECRET_BYTES} bytes")
    return key
