"""Token minting in the publisher SDK: what it signs, the functions' own verifier accepts as asked;
what that verifier would refuse or read differently, it refuses before signing."""

from __future__ import annotations

import boto3
import jwt
import pytest
from moto import mock_aws
from realtime.core.auth import InvalidToken as Refused
from realtime.core.auth import TokenVerifier
from realtime_publisher.tokens import InvalidToken, TokenMinter

SECRET = "s" * 32
ISSUER, AUDIENCE = "https://auth.example.com/", "realtime"
NOW = 1_700_000_000  # in the past: only the lifetime is read, not whether it is still valid


def verifier(secret: str = SECRET, max_lifetime: int = 86400) -> TokenVerifier:
    """The functions' verifier (realtime.core.auth), as ws-connect and events-api build it in hs256 mode."""
    return TokenVerifier(
        algorithms=["HS256"],
        resolve_keys=lambda _token: [secret.encode()],
        issuer=ISSUER,
        audience=AUDIENCE,
        max_lifetime=max_lifetime,
    )


def minter(**options) -> TokenMinter:
    return TokenMinter(SECRET, issuer=ISSUER, audience=AUDIENCE, **options)


@pytest.mark.parametrize(
    ("user", "groups", "topics"),
    [
        ("alice", [], []),
        ("alice", ["ops", "dev"], []),
        ("bob@example.com", ["team|a"], ["presence:carol", "group:extra"]),
        ("u" * 128, [], ["all"]),
    ],
)
def test_the_functions_verify_a_minted_token_with_the_topics_asked_for(user, groups, topics):
    token = minter().mint(user, groups=groups, topics=topics)

    principal = verifier().verify(token)

    assert principal.user_id == user
    assert principal.groups == tuple(groups)
    assert list(principal.topics) == TokenMinter.topics_of(user, groups, topics)


def test_a_token_lives_as_long_as_asked_and_the_stack_allows():
    token = minter(clock=lambda: NOW).mint("alice", lifetime_seconds=600)

    claims = jwt.decode(token, SECRET, algorithms=["HS256"], audience=AUDIENCE, options={"verify_exp": False})
    assert (claims["iat"], claims["exp"]) == (NOW, NOW + 600)
    with pytest.raises(InvalidToken, match=r"lifetime_seconds must be 1\.\.3600"):
        minter(max_lifetime_seconds=3600).mint("alice", lifetime_seconds=3601)


def test_a_lifetime_the_stack_refuses_is_refused_here_first():
    long_lived = TokenMinter(SECRET, issuer=ISSUER, audience=AUDIENCE, max_lifetime_seconds=7200)
    token = long_lived.mint("alice", lifetime_seconds=7200)

    with pytest.raises(Refused, match="lifetime"):
        verifier(max_lifetime=3600).verify(token)  # the stack's limit is 3600: keep the minter's the same
    with pytest.raises(InvalidToken):
        minter(max_lifetime_seconds=3600).mint("alice", lifetime_seconds=7200)


@pytest.mark.parametrize(
    ("user", "groups", "topics", "reason"),
    [
        ("", [], [], "user id"),
        ("has space", [], [], "user id"),
        ("alice", ["bad group!"], [], "group 'bad group!'"),  # the functions would silently leave it out
        ("alice", [], ["room:1"], "topic 'room:1'"),  # likewise
        ("alice", "ops", [], "lists of strings"),
        ("alice", [f"g{i}" for i in range(99)], [], "101 topics"),  # own + 99 groups + all
    ],
)
def test_what_the_functions_would_refuse_or_drop_is_refused_before_signing(user, groups, topics, reason):
    with pytest.raises(InvalidToken, match=reason):
        minter().mint(user, groups=groups, topics=topics)


def test_the_user_id_limit_is_the_functions_own():
    too_long = "u" * 129
    with pytest.raises(InvalidToken):
        minter().mint(too_long)
    forged = jwt.encode(
        {"sub": too_long, "iss": ISSUER, "aud": AUDIENCE, "iat": NOW, "exp": 4_000_000_000}, SECRET, algorithm="HS256"
    )
    with pytest.raises(Refused):
        verifier(max_lifetime=10**10).verify(forged)


def test_a_short_secret_is_refused_as_the_stack_refuses_it():
    with pytest.raises(InvalidToken, match="at least 32 bytes"):
        TokenMinter("short", issuer=ISSUER, audience=AUDIENCE)


def test_extra_claims_cannot_override_what_the_stack_reads():
    with pytest.raises(InvalidToken, match=r"\['sub'\]"):
        minter().mint("alice", extra_claims={"sub": "mallory"})
    token = minter().mint("alice", extra_claims={"name": "Alice"})
    assert verifier().verify(token).user_id == "alice"


def test_the_secret_is_read_from_the_parameter_the_module_reads():
    with mock_aws():
        ssm = boto3.client("ssm", region_name="us-east-1")
        ssm.put_parameter(Name="/realtime/token-secret", Value=SECRET, Type="SecureString")

        token = TokenMinter.from_ssm("/realtime/token-secret", ssm_client=ssm, issuer=ISSUER, audience=AUDIENCE).mint(
            "alice"
        )

    assert verifier().verify(token).user_id == "alice"


def test_the_secret_is_read_from_the_secrets_manager_secret_the_module_reads():
    with mock_aws():
        secrets = boto3.client("secretsmanager", region_name="us-east-1")
        arn = secrets.create_secret(Name="realtime-token", SecretString=SECRET)["ARN"]

        token = TokenMinter.from_secrets_manager(arn, secrets_client=secrets, issuer=ISSUER, audience=AUDIENCE).mint(
            "bob", groups=["ops"]
        )

    assert verifier().verify(token).topics == ("user:bob", "group:ops", "all")
