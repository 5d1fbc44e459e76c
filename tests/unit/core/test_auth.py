import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from realtime.core import auth, lifecycle
from realtime.core.auth import InvalidToken, Principal, TokenVerifier
from realtime.core.errors import ConfigError
from realtime.core.settings import TokenSettings, load

from ..support import AUDIENCE, ISSUER, REGION, SECRET, SSM_PARAMETER, make_token

NEW_SECRET = "the-next-hs256-secret-after-rotation-0123456789"


# --- hs256 -----------------------------------------------------------------


def default_verifier() -> TokenVerifier:
    """The verifier the functions build, from the TOKEN_* variables."""
    return TokenVerifier.from_settings(load(TokenSettings), max_topics=100)


def test_a_token_granting_more_topics_than_allowed_is_refused(hs256_token_mode):
    verifier = TokenVerifier.from_settings(load(TokenSettings), max_topics=5)

    assert len(verifier.verify(make_token("42", groups=["a", "b", "c"])).topics) == 5  # user, three groups, all
    with pytest.raises(InvalidToken) as caught:
        verifier.verify(make_token("42", groups=["a", "b"], topics=["presence:1", "presence:2"]))
    assert caught.value.reason == "too_many_topics"
    assert "6 topics; at most 5" in caught.value.detail


def test_valid_hs256_token_from_ssm(hs256_token_mode):
    expires_at = int(time.time()) + 120
    token = make_token("42", groups=["ops"], topics=["presence:7"], exp=expires_at + 0.5)

    principal = default_verifier().verify(token)

    assert principal == Principal(
        user_id="42", groups=("ops",), topics=("user:42", "group:ops", "presence:7", "all"), expires_at=expires_at
    )


def test_valid_hs256_token_from_secrets_manager(aws_mock, token_checks, monkeypatch):
    arn = boto3.client("secretsmanager", region_name=REGION).create_secret(
        Name="realtime-test/token", SecretString=SECRET
    )["ARN"]
    monkeypatch.setenv("TOKEN_SECRET_ARN", arn)

    assert default_verifier().verify(make_token("7")).user_id == "7"


def _reason(token):
    with pytest.raises(InvalidToken) as caught:
        default_verifier().verify(token)
    return caught.value.reason


def test_missing_token(hs256_token_mode):
    assert _reason(None) == "missing_token"
    assert _reason("") == "missing_token"


def test_expired_token(hs256_token_mode):
    assert _reason(make_token(expires_in=-60)) == "expired"


def test_small_clock_skew_is_tolerated(hs256_token_mode):
    assert default_verifier().verify(make_token(expires_in=-3)).user_id == "user-1"


def test_bad_signature(hs256_token_mode):
    assert _reason(make_token(key="another-secret-that-is-long-enough-0123456789")) == "bad_signature"


def test_alg_none_is_refused(hs256_token_mode):
    unsigned = jwt.encode({"sub": "42", "exp": int(time.time()) + 60}, None, algorithm="none")

    assert _reason(unsigned) == "unsupported_algorithm"


def test_other_hmac_algorithms_are_refused(hs256_token_mode):
    assert _reason(make_token(key=SECRET * 2, algorithm="HS512")) == "unsupported_algorithm"


@pytest.mark.parametrize("missing", ["sub", "exp", "iss", "aud"])
def test_required_claims(hs256_token_mode, missing):
    claims = {"sub": "42", "exp": int(time.time()) + 60, "iss": ISSUER, "aud": AUDIENCE}
    del claims[missing]

    assert _reason(jwt.encode(claims, SECRET, algorithm="HS256")) == "missing_claim"


@pytest.mark.parametrize(
    "claims",
    [{"sub": "has space"}, {"sub": "42", "groups": "ops"}, {"sub": "42", "topics": [1]}, {"sub": 42}],
)
def test_malformed_claims(hs256_token_mode, claims):
    payload = {"exp": int(time.time()) + 60, "iss": ISSUER, "aud": AUDIENCE, **claims}

    assert _reason(jwt.encode(payload, SECRET, algorithm="HS256")) == "invalid_claims"


def test_garbage_is_malformed(hs256_token_mode):
    assert _reason("not.a.jwt") == "malformed"
    assert _reason("x" * 9000) == "malformed"


def test_a_token_signed_with_the_same_secret_for_another_service_is_refused(hs256_token_mode):
    """hs256 mode checks issuer and audience too: sharing a secret does not make tokens interchangeable."""
    assert default_verifier().verify(make_token(iss=ISSUER, aud=AUDIENCE)).user_id == "user-1"
    assert _reason(make_token(iss="https://billing.example/")) == "invalid_issuer"
    assert _reason(make_token(aud="billing")) == "invalid_audience"
    assert _reason(make_token(iss=None, aud=None)) == "missing_claim"


@pytest.mark.parametrize(
    ("claims", "verdict"),
    [
        ({"expires_in": 86_000}, "accepted"),
        ({"expires_in": 3 * 86400}, "lifetime_too_long"),  # no iat: counted from now
        ({"expires_in": 23 * 3600, "iat": int(time.time()) - 2 * 3600}, "lifetime_too_long"),  # 25 h from iat
        ({"expires_in": 3600, "iat": int(time.time()) - 3600}, "accepted"),
    ],
)
def test_tokens_valid_longer_than_the_max_lifetime_are_refused(hs256_token_mode, claims, verdict):
    token = make_token(**claims)

    if verdict == "accepted":
        assert default_verifier().verify(token).user_id == "user-1"
    else:
        assert _reason(token) == verdict


def test_short_secret_is_a_configuration_error(aws_mock, token_checks, monkeypatch):
    boto3.client("ssm", region_name=REGION).put_parameter(Name="/short", Value="too-short", Type="SecureString")
    monkeypatch.setenv("TOKEN_SECRET_SSM_PARAMETER", "/short")

    with pytest.raises(ConfigError, match="at least 32 bytes"):
        default_verifier().verify(make_token(key="too-short-but-used-anyway-by-an-attacker!"))


def test_secret_is_cached_between_calls(hs256_token_mode):
    verifier = default_verifier()
    verifier.verify(make_token())
    boto3.client("ssm", region_name=REGION).delete_parameter(Name="/realtime-test/token-secret")

    assert verifier.verify(make_token()).user_id == "user-1"


# --- secret rotation -----------------------------------------------------------


def rotate_ssm(value: str) -> None:
    boto3.client("ssm", region_name=REGION).put_parameter(
        Name=SSM_PARAMETER, Value=value, Type="SecureString", Overwrite=True
    )


def test_tokens_signed_with_the_previous_ssm_version_still_verify_after_a_rotation(hs256_token_mode, monkeypatch):
    verifier = default_verifier()
    old_token = make_token("42")
    verifier.verify(old_token)

    rotate_ssm(NEW_SECRET)
    monkeypatch.setattr(auth, "SECRET_MAX_AGE_SECONDS", 0)  # the versions are read again

    assert verifier.verify(old_token).user_id == "42"
    assert verifier.verify(make_token("43", key=NEW_SECRET)).user_id == "43"


def test_tokens_signed_with_a_secret_just_stored_verify_at_once(hs256_token_mode, monkeypatch):
    """The issuer may sign with the new secret right away: a token matching no known version reads them again."""
    verifier = default_verifier()
    verifier.verify(make_token("42"))  # the versions are read (and cached for 5 minutes)

    rotate_ssm(NEW_SECRET)
    monkeypatch.setattr(auth, "SECRET_REFRESH_SECONDS", 0)

    assert verifier.verify(make_token("43", key=NEW_SECRET)).user_id == "43"


def test_two_rotations_retire_the_oldest_secret(hs256_token_mode, monkeypatch):
    verifier = default_verifier()
    oldest = make_token("42")
    rotate_ssm(NEW_SECRET)
    rotate_ssm("and-the-one-after-that-hs256-secret-0123456789")
    monkeypatch.setattr(auth, "SECRET_MAX_AGE_SECONDS", 0)

    assert _reason(oldest) == "bad_signature"
    assert verifier.verify(make_token("43", key=NEW_SECRET)).user_id == "43"


def test_tokens_signed_with_the_awsprevious_secret_still_verify(aws_mock, token_checks, monkeypatch):
    secrets = boto3.client("secretsmanager", region_name=REGION)
    arn = secrets.create_secret(Name="realtime-test/token", SecretString=SECRET)["ARN"]
    monkeypatch.setenv("TOKEN_SECRET_ARN", arn)
    secrets.put_secret_value(SecretId=arn, SecretString=NEW_SECRET)

    verifier = default_verifier()

    assert verifier.verify(make_token("42")).user_id == "42"
    assert verifier.verify(make_token("43", key=NEW_SECRET)).user_id == "43"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_secret_is_read_again_early_at_most_every_30_seconds():
    reads: list[float] = []
    clock = FakeClock()

    def fetch() -> list[str]:
        reads.append(clock.now)
        return [SECRET]

    secret = auth.SecretVersions(fetch, clock)
    secret.keys()
    clock.now += 10
    assert secret.refreshed() is None  # a flood of bad tokens does not become a flood of reads
    clock.now += 25
    assert secret.refreshed() == [SECRET.encode()]
    clock.now += 299
    secret.keys()
    assert reads == [1000.0, 1035.0]


def test_a_previous_secret_that_is_too_short_is_not_trusted():
    secret = auth.SecretVersions(lambda: [SECRET, "short-old-secret"])

    assert secret.keys() == [SECRET.encode()]


# --- jwks --------------------------------------------------------------------


@pytest.fixture(scope="module")
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key():
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def jwks_server(rsa_key, ec_key):
    """A JWKS endpoint on 127.0.0.1 (random port) serving the test keys; counts fetches."""
    keys = []
    for kid, key, alg in (("rsa-1", rsa_key, "RS256"), ("ec-1", ec_key, "ES256")):
        algorithm = jwt.algorithms.RSAAlgorithm if alg == "RS256" else jwt.algorithms.ECAlgorithm
        jwk = json.loads(algorithm.to_jwk(key.public_key()))
        keys.append({**jwk, "kid": kid, "alg": alg, "use": "sig"})
    body = json.dumps({"keys": keys}).encode()
    fetches = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            fetches.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json", fetches
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def jwks_mode(jwks_server, token_checks, monkeypatch):
    url, fetches = jwks_server
    monkeypatch.setenv("TOKEN_MODE", "jwks")
    monkeypatch.setenv("TOKEN_JWKS_URL", url)
    lifecycle.reset()
    return fetches


def _signed(key, kid="rsa-1", algorithm="RS256", **claims):
    payload = {"sub": "42", "iss": ISSUER, "aud": AUDIENCE, **claims}
    return make_token(payload.pop("sub"), key=key, algorithm=algorithm, headers={"kid": kid}, **payload)


def test_jwks_rs256_and_es256(jwks_mode, rsa_key, ec_key):
    verifier = default_verifier()

    assert verifier.verify(_signed(rsa_key, groups=["ops"])).topics == ("user:42", "group:ops", "all")
    assert verifier.verify(_signed(ec_key, kid="ec-1", algorithm="ES256")).user_id == "42"
    assert len(jwks_mode) == 1  # the key set is fetched once and cached


def test_jwks_wrong_issuer_and_audience(jwks_mode, rsa_key):
    assert _reason(_signed(rsa_key, iss="https://evil.example/")) == "invalid_issuer"
    assert _reason(_signed(rsa_key, aud="other")) == "invalid_audience"


def test_jwks_key_from_elsewhere_fails(jwks_mode):
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    assert _reason(_signed(stranger)) == "bad_signature"


def test_jwks_unknown_kid(jwks_mode, rsa_key):
    assert _reason(_signed(rsa_key, kid="nope")) == "unknown_key"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_jwks_refuses_hmac_signed_with_the_public_key(jwks_mode, rsa_key):
    # Algorithm confusion: an attacker signs HS256 with the public key as the HMAC secret.
    public_pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}).encode())
    claims = {"sub": "admin", "iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 60}
    signing_input = f"{header}.{_b64(json.dumps(claims).encode())}"
    signature = _b64(hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest())

    assert _reason(f"{signing_input}.{signature}") == "unsupported_algorithm"
    assert jwks_mode == []  # refused before any key fetch


def test_jwks_alg_none(jwks_mode):
    unsigned = jwt.encode({"sub": "42", "iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 60}, None, "none")

    assert _reason(unsigned) == "unsupported_algorithm"


def test_jwks_endpoint_down_is_not_the_callers_fault(token_checks, monkeypatch, rsa_key):
    monkeypatch.setenv("TOKEN_MODE", "jwks")
    monkeypatch.setenv("TOKEN_JWKS_URL", "http://127.0.0.1:9/jwks.json")  # discard port: refused

    with pytest.raises(jwt.PyJWKClientConnectionError):
        default_verifier().verify(_signed(rsa_key))


def test_verifier_can_be_built_directly_with_a_key_resolver():
    verifier = TokenVerifier(
        algorithms=["HS256"],
        resolve_keys=lambda _token: [SECRET.encode()],
        issuer=ISSUER,
        audience=AUDIENCE,
        max_lifetime=3600,
    )

    assert verifier.verify(make_token("9")).topics == ("user:9", "all")


# In a fresh interpreter: whether PyJWT loads `cryptography` is decided at its first import.


def _import_auth_in_a_fresh_interpreter(mode: str) -> list[str]:
    functions = Path(auth.__file__).resolve().parents[2]
    script = (
        "import sys\n"
        "from realtime.core import auth\n"
        "verifier = auth.TokenVerifier(algorithms=['HS256'], resolve_keys=lambda _t: [sys.argv[1].encode()],\n"
        "                              issuer=sys.argv[2], audience=sys.argv[3], max_lifetime=3600)\n"
        "print(verifier.verify(sys.argv[4]).topics, 'cryptography' in sys.modules, auth.jwt.algorithms.has_crypto)\n"
    )
    environment = {"PATH": os.environ["PATH"], "PYTHONPATH": str(functions), "TOKEN_MODE": mode}
    result = subprocess.run(
        [sys.executable, "-c", script, SECRET, ISSUER, AUDIENCE, make_token("9")],
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.split()


def test_hs256_mode_verifies_tokens_without_loading_cryptography():
    """cryptography is about 40 ms of a cold start that HS256 (HMAC) never uses."""
    assert _import_auth_in_a_fresh_interpreter("hs256")[-2:] == ["False", "False"]
    assert _import_auth_in_a_fresh_interpreter("jwks")[-2:] == ["True", "True"]
