"""Mint a token for the LOCAL stack (development only; never for a deployed stack).

    python -m scripts.local.mint_token --user alice [--groups ops,dev] [--topics presence:bob] [--ttl 3600]

Reads the local stack's HS256 secret from the emulator's SSM (the parameter
named in .local/endpoints.json, written by `make up`) and prints a signed JWT
with the claims DESIGN.md describes: sub, exp, groups, topics, and the issuer
and audience terraform/examples/local gives the module.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jwt

from scripts.local.emulator import LOCAL_ENDPOINTS, emulator_client, read_endpoints

# terraform/examples/local's token.issuer and token.audience.
LOCAL_ISSUER = "realtime-local"
LOCAL_AUDIENCE = "realtime-local"


def mint_token(
    secret: str,
    user: str,
    groups: list[str] | None = None,
    topics: list[str] | None = None,
    ttl: int = 3600,
    **extra_claims: object,
) -> str:
    now = int(time.time())
    claims = {
        "sub": user,
        "iss": LOCAL_ISSUER,
        "aud": LOCAL_AUDIENCE,
        "iat": now,
        "exp": now + ttl,
        "groups": groups or [],
        "topics": topics or [],
    }
    claims.update(extra_claims)
    return jwt.encode(claims, secret, algorithm="HS256")


def local_secret(endpoints: dict) -> str:
    ssm = emulator_client(endpoints, "ssm")
    parameter = ssm.get_parameter(Name=endpoints["token_secret_ssm_parameter"], WithDecryption=True)
    return parameter["Parameter"]["Value"]


def _split(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--user", required=True)
    parser.add_argument("--groups", default="", help="comma-separated group names")
    parser.add_argument("--topics", default="", help="comma-separated extra topics, e.g. presence:bob")
    parser.add_argument("--ttl", type=int, default=3600, help="seconds until the token expires")
    parser.add_argument("--endpoints", type=Path, default=LOCAL_ENDPOINTS)
    args = parser.parse_args()
    endpoints = read_endpoints(args.endpoints)
    print(mint_token(local_secret(endpoints), args.user, _split(args.groups), _split(args.topics), args.ttl))


if __name__ == "__main__":
    main()
