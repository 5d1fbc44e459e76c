"""Mint the HS256 tokens a realtime-events stack accepts, on your API server (docs/tokens.md).

    from realtime_publisher.tokens import TokenMinter

    minter = TokenMinter.from_ssm("/realtime/token-secret", issuer="https://auth.example.com/", audience="realtime")
    token = minter.mint("alice", groups=["ops"])          # what the browser's getToken() fetches

The claims and limits are the functions' own (realtime.core.auth, docs/design.md "Tokens"): `sub`, `iss`,
`aud`, `iat` and `exp`; `groups` (a `group:<g>` topic each) and extra `topics` the token grants; at most
100 topics in all (the user's own topic and `all` included); a lifetime no longer than the stack's
`token.max_lifetime_seconds` (a day by default); a secret of at least 32 bytes. What the functions would
refuse, or silently leave out (a group that cannot form a topic), is refused here with InvalidToken
before any token exists.

HS256 puts the signing secret on every server that mints: prefer a JWKS issuer (Cognito or any OIDC
provider, `token.jwks_url`) when you have one; docs/tokens.md compares the two. Needs PyJWT
(`pip install realtime-events-publisher[tokens]`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .publisher import TOPIC_PATTERN  # the contract's topic grammar, as the publisher checks audiences

MIN_SECRET_BYTES = 32  # RFC 7518: an HS256 key has at least 256 bits; the functions refuse shorter
MAX_TOPICS_PER_TOKEN = 100  # the functions' limit, the user's own topic and `all` included
DEFAULT_MAX_LIFETIME_SECONDS = 86400  # the module's token.max_lifetime_seconds default
DEFAULT_LIFETIME_SECONDS = 3600
RESERVED_CLAIMS = {"sub", "iss", "aud", "iat", "exp", "groups", "topics"}


class InvalidToken(ValueError):
    """A token the stack would refuse (or read differently from what was asked); nothing was signed."""


class TokenMinter:
    """Signs tokens for one stack: its HS256 secret, issuer and audience (the module's `token` input)."""

    def __init__(
        self,
        secret: str | bytes,
        *,
        issuer: str,
        audience: str,
        max_lifetime_seconds: int = DEFAULT_MAX_LIFETIME_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        key = secret.encode() if isinstance(secret, str) else bytes(secret)
        if len(key) < MIN_SECRET_BYTES:
            raise InvalidToken(f"the HS256 secret must be at least {MIN_SECRET_BYTES} bytes (the stack refuses less)")
        if not issuer or not audience:
            raise InvalidToken("issuer and audience are the module's token.issuer and token.audience: both are needed")
        self._key = key
        self.issuer = issuer
        self.audience = audience
        self.max_lifetime_seconds = max_lifetime_seconds
        self._clock = clock

    @classmethod
    def from_ssm(cls, parameter_name: str, *, ssm_client: Any = None, **options: Any) -> TokenMinter:
        """The secret from the SSM SecureString parameter the module reads (token.secret_ssm_parameter_name)."""
        if ssm_client is None:
            import boto3

            ssm_client = boto3.client("ssm")
        value = ssm_client.get_parameter(Name=parameter_name, WithDecryption=True)["Parameter"]["Value"]
        return cls(value, **options)

    @classmethod
    def from_secrets_manager(cls, secret_arn: str, *, secrets_client: Any = None, **options: Any) -> TokenMinter:
        """The secret from the Secrets Manager secret the module reads (token.secret_arn): its current version."""
        if secrets_client is None:
            import boto3

            secrets_client = boto3.client("secretsmanager")
        answer = secrets_client.get_secret_value(SecretId=secret_arn)
        return cls(answer.get("SecretString") or answer["SecretBinary"], **options)

    def mint(
        self,
        user_id: str,
        *,
        groups: Sequence[str] = (),
        topics: Sequence[str] = (),
        lifetime_seconds: int = DEFAULT_LIFETIME_SECONDS,
        extra_claims: Mapping[str, Any] | None = None,
    ) -> str:
        """A token for `user_id` (its `sub`): its own topic `user:<id>`, `group:<g>` for each group, the
        granted `topics` (e.g. `presence:bob` to watch bob) and `all`, valid for `lifetime_seconds`."""
        import jwt  # only where tokens are minted: publishing events needs boto3 alone

        self.topics_of(user_id, groups, topics)  # refuses what the functions would refuse or leave out
        if not 0 < lifetime_seconds <= self.max_lifetime_seconds:
            raise InvalidToken(
                f"lifetime_seconds must be 1..{self.max_lifetime_seconds} (the stack's token.max_lifetime_seconds)"
            )
        clash = RESERVED_CLAIMS & set(extra_claims or {})
        if clash:
            raise InvalidToken(f"extra_claims may not set {sorted(clash)}: mint() sets them")
        now = int(self._clock())
        claims = {
            **(extra_claims or {}),
            "sub": user_id,
            "iss": self.issuer,
            "aud": self.audience,
            "iat": now,
            "exp": now + lifetime_seconds,
        }
        if groups:
            claims["groups"] = list(groups)
        if topics:
            claims["topics"] = list(topics)
        return jwt.encode(claims, self._key, algorithm="HS256")

    @staticmethod
    def topics_of(user_id: str, groups: Sequence[str] = (), topics: Sequence[str] = ()) -> list[str]:
        """The topics a token with these claims subscribes to, as the functions derive them; InvalidToken
        for a user id, group or topic that cannot form a topic, or past 100 topics."""
        if isinstance(groups, str) or isinstance(topics, str):
            raise InvalidToken("groups and topics are lists of strings, not a string")
        own = f"user:{user_id}"
        if not isinstance(user_id, str) or not TOPIC_PATTERN.match(own):
            raise InvalidToken(f"user id {user_id!r} cannot form a topic (A-Z a-z 0-9 _ . @ : | + -, 1..128)")
        wanted = [own]
        for group in groups:
            topic = f"group:{group}"
            if not isinstance(group, str) or not TOPIC_PATTERN.match(topic):
                raise InvalidToken(f"group {group!r} cannot form a topic (A-Z a-z 0-9 _ . @ : | + -, 1..128)")
            wanted.append(topic)
        for topic in topics:
            if not isinstance(topic, str) or not TOPIC_PATTERN.match(topic):
                raise InvalidToken(f"topic {topic!r} is not a topic (all, user:<id>, group:<id> or presence:<id>)")
            wanted.append(topic)
        unique = list(dict.fromkeys([*wanted, "all"]))
        if len(unique) > MAX_TOPICS_PER_TOKEN:
            raise InvalidToken(f"the token would grant {len(unique)} topics; the stack accepts at most 100")
        return unique
