"""Token verification with PyJWT: who is calling, and which topics they may read."""

from __future__ import annotations

import contextlib
import importlib
import importlib.abc
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from types import ModuleType
from typing import Any

import msgspec

from realtime.core import aws
from realtime.core.contract import MAX_TOPICS_PER_TOKEN
from realtime.core.errors import ConfigError
from realtime.core.observability import logger
from realtime.core.settings import TokenSettings
from realtime.core.topics import topics_for_claims

HMAC_ALGORITHMS = ["HS256"]
# Never HS*: a public key must not be usable as an HMAC secret (algorithm confusion).
ASYMMETRIC_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]
LEEWAY_SECONDS = 10
SECRET_MAX_AGE_SECONDS = 300  # the secret's versions are read again every 5 minutes...
SECRET_REFRESH_SECONDS = 30  # ...and early (at most this often) when a token matches none of them
JWKS_CACHE_SECONDS = 300
MIN_SECRET_BYTES = 32  # RFC 7518: an HS256 key has at least 256 bits
MAX_TOKEN_LENGTH = 8192
REQUIRED_CLAIMS = ["exp", "sub", "iss", "aud"]

KeyResolver = Callable[[str], Sequence[Any]]  # the keys a token may be signed with, tried in order


class _WithoutCryptography(importlib.abc.MetaPathFinder):
    """Has `cryptography` look absent to what is imported while this finder is on sys.meta_path."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == "cryptography" or name.startswith("cryptography."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


def _import_pyjwt(token_mode: str | None) -> ModuleType:
    """PyJWT, without `cryptography` in hs256 mode.

    PyJWT imports `cryptography` whenever it is installed, for its RSA, EC and EdDSA
    algorithms: about 40 ms of every cold start of ws-connect and events-api (make bench,
    "Cold start"). HS256 is HMAC from the standard library, so in hs256 mode PyJWT is
    imported as if `cryptography` were absent, which it supports (`jwt.algorithms.has_crypto`
    is then False and only the HMAC algorithms exist). jwks mode, or no mode set (tests,
    tools), imports it as usual.
    """
    hs256_only = token_mode == "hs256"  # noqa: S105 (a mode's name, not a password)
    if not hs256_only or "jwt" in sys.modules or "cryptography" in sys.modules:
        return importlib.import_module("jwt")
    finder = _WithoutCryptography()
    sys.meta_path.insert(0, finder)
    try:
        return importlib.import_module("jwt")
    finally:
        sys.meta_path.remove(finder)


jwt = _import_pyjwt(os.environ.get("TOKEN_MODE"))


class InvalidToken(Exception):
    """The token is missing or must not be trusted.

    `reason` is a short code safe to log and to count; `detail` is PyJWT's
    message, for logs only.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason if not detail else f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class Principal(msgspec.Struct, frozen=True):
    user_id: str
    groups: tuple[str, ...]
    topics: tuple[str, ...]
    expires_at: int | None = None  # the token's `exp` (epoch seconds): delivery stops and closes the socket then


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


class SecretVersions:
    """The HS256 secret's current and previous versions: during a rotation, tokens signed with either verify.

    Read every SECRET_MAX_AGE_SECONDS, and early (at most every SECRET_REFRESH_SECONDS)
    when a token matches no version known, so tokens signed with a newly stored
    secret verify at once. `fetch` returns the current version, then the previous one if any.
    """

    def __init__(self, fetch: Callable[[], list[str | bytes]], clock: Callable[[], float] = time.monotonic) -> None:
        self._fetch = fetch
        self._clock = clock
        self._keys: list[bytes] = []
        self._read_at = -math.inf

    def keys(self) -> list[bytes]:
        if self._clock() - self._read_at >= SECRET_MAX_AGE_SECONDS:
            self._read()
        return self._keys

    def refreshed(self) -> list[bytes] | None:
        """The versions read again, unless they were read moments ago (then None)."""
        if self._clock() - self._read_at < SECRET_REFRESH_SECONDS:
            return None
        self._read()
        return self._keys

    def _read(self) -> None:
        current, *previous = (_as_bytes(version) for version in self._fetch())
        keys = [_checked_secret(current)]
        for key in previous:
            if len(key) >= MIN_SECRET_BYTES:
                keys.append(key)
            else:  # an old, too short secret is never trusted again
                logger.warning("The previous token secret is shorter than 32 bytes; only the current one is accepted")
        self._keys = keys
        self._read_at = self._clock()


def ssm_versions(name: str) -> Callable[[], list[str | bytes]]:
    """The current and previous versions of an SSM SecureString (`put-parameter --overwrite` makes a version)."""

    def fetch() -> list[str | bytes]:
        ssm = aws.ssm()
        current = ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]
        versions: list[str | bytes] = [current["Value"]]
        if current["Version"] > 1:
            try:
                previous = ssm.get_parameter(Name=f"{name}:{current['Version'] - 1}", WithDecryption=True)
            except ssm.exceptions.ParameterVersionNotFound:  # deleted from the parameter's history
                return versions
            versions.append(previous["Parameter"]["Value"])
        return versions

    return fetch


def secrets_manager_versions(arn: str) -> Callable[[], list[str | bytes]]:
    """The AWSCURRENT and AWSPREVIOUS versions of a Secrets Manager secret (`put-secret-value` moves both labels)."""

    def fetch() -> list[str | bytes]:
        secrets = aws.secretsmanager()
        versions = [_secret_value(secrets.get_secret_value(SecretId=arn))]
        with contextlib.suppress(secrets.exceptions.ResourceNotFoundException):  # never rotated
            versions.append(_secret_value(secrets.get_secret_value(SecretId=arn, VersionStage="AWSPREVIOUS")))
        return versions

    return fetch


def _secret_value(response: dict[str, Any]) -> str | bytes:
    return response["SecretString"] if "SecretString" in response else response["SecretBinary"]


class TokenVerifier:
    """Verifies a JWT and turns its claims into a Principal.

    Algorithms are pinned per mode, so `alg: none` and HS/RS confusion fail.
    Issuer and audience are checked in both modes, and a token may not be valid
    for longer than `max_lifetime` seconds (from `iat`, or from now without it).
    Raises InvalidToken for anything the caller did wrong; infrastructure
    failures (secret or JWKS unreachable) propagate as other exceptions.
    """

    def __init__(
        self,
        *,
        algorithms: list[str],
        resolve_keys: KeyResolver,
        issuer: str,
        audience: str,
        max_lifetime: int,
        refresh_keys: Callable[[], Sequence[Any] | None] | None = None,
        leeway: int = LEEWAY_SECONDS,
        max_topics: int = MAX_TOPICS_PER_TOKEN,
    ) -> None:
        self._algorithms = algorithms
        self._resolve_keys = resolve_keys
        self._refresh_keys = refresh_keys
        self._issuer = issuer
        self._audience = audience
        self._max_lifetime = max_lifetime
        self._leeway = leeway
        self._max_topics = max_topics

    @classmethod
    def from_settings(cls, settings: TokenSettings, *, max_topics: int) -> TokenVerifier:
        """`max_topics`: a token granting more topics is refused (the module's max_topics_per_token)."""
        verifier = partial(
            cls,
            issuer=settings.issuer,
            audience=settings.audience,
            max_lifetime=settings.max_lifetime_seconds,
            max_topics=max_topics,
        )
        if settings.mode == "jwks":
            jwks = jwt.PyJWKClient(settings.jwks_url or "", cache_jwk_set=True, lifespan=JWKS_CACHE_SECONDS, timeout=5)
            return verifier(
                algorithms=ASYMMETRIC_ALGORITHMS, resolve_keys=lambda token: [jwks.get_signing_key_from_jwt(token)]
            )
        if settings.secret_ssm_parameter:
            secret = SecretVersions(ssm_versions(settings.secret_ssm_parameter))
        else:
            secret = SecretVersions(secrets_manager_versions(settings.secret_arn or ""))
        return verifier(
            algorithms=HMAC_ALGORITHMS, resolve_keys=lambda _token: secret.keys(), refresh_keys=secret.refreshed
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
            claims = self._decode(token)
        except jwt.PyJWKClientConnectionError:
            raise  # the JWKS endpoint is down: not the caller's fault
        except jwt.PyJWTError as error:
            raise InvalidToken(_reason_for(error), str(error)) from None
        self._check_lifetime(claims)
        return self._principal(claims)

    def _decode(self, token: str) -> dict[str, Any]:
        try:
            return self._decode_with_any(token, self._resolve_keys(token))
        except jwt.InvalidSignatureError:
            # Perhaps signed with a secret stored since the keys were read: read them again.
            fresh = self._refresh_keys() if self._refresh_keys else None
            if not fresh:
                raise
            return self._decode_with_any(token, fresh)

    def _decode_with_any(self, token: str, keys: Sequence[Any]) -> dict[str, Any]:
        *others, last = keys
        for key in others:
            try:
                return self._decode_with(token, key)
            except jwt.InvalidSignatureError:
                continue
        return self._decode_with(token, last)

    def _decode_with(self, token: str, key: Any) -> dict[str, Any]:
        return jwt.decode(
            token,
            key,
            algorithms=self._algorithms,
            issuer=self._issuer,
            audience=self._audience,
            leeway=self._leeway,
            options={"require": REQUIRED_CLAIMS},
        )

    def _check_lifetime(self, claims: dict[str, Any]) -> None:
        now = time.time()
        issued = claims.get("iat")
        start = min(issued, now) if isinstance(issued, int | float) and not isinstance(issued, bool) else now
        if claims["exp"] - start > self._max_lifetime + self._leeway:
            raise InvalidToken("lifetime_too_long", f"the token is valid for more than {self._max_lifetime} seconds")

    def _principal(self, claims: dict[str, Any]) -> Principal:
        groups = _string_list(claims, "groups")
        _string_list(claims, "topics")
        try:
            topics = topics_for_claims(claims)
        except ValueError as error:
            raise InvalidToken("invalid_claims", str(error)) from None
        if len(topics) > self._max_topics:
            raise InvalidToken("too_many_topics", f"token grants {len(topics)} topics; at most {self._max_topics}")
        return Principal(user_id=claims["sub"], groups=groups, topics=tuple(topics), expires_at=int(claims["exp"]))


def _as_bytes(secret: str | bytes) -> bytes:
    return secret.encode() if isinstance(secret, str) else secret


def _checked_secret(key: bytes) -> bytes:
    if len(key) < MIN_SECRET_BYTES:
        # An empty or short secret would make tokens forgeable: refuse to run with it.
        raise ConfigError(f"the HS256 token secret must be at least {MIN_SECRET_BYTES} bytes")
    return key
