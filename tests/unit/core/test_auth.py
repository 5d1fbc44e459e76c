import base64
import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from realtime.core import lifecycle
from realtime.core.auth import InvalidToken, Principal, TokenVerifier
from realtime.core.errors import ConfigError
from realtime.core.settings import TokenSettings, load

from ..support import REGION, SECRET, make_token

ISSUER = "https://issuer.example/"
AUDIENCE = "realtime-test"


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
    token = make_token("42", groups=["ops"], topics=["presence:7"])

    principal = default_verifier().verify(token)

    assert principal == Principal(user_id="42", groups=("ops",), topics=("user:42", "group:ops", "presence:7", "all"))


def test_valid_hs256_token_from_secrets_manager(aws_mock, monkeypatch):
    arn = boto3.client("secretsmanager", region_name=REGION).create_secret(
        Name="realtime-test/token", SecretString=SECRET
    )["ARN"]
    monkeypatch.setenv("TOKEN_MODE", "hs256")
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


@pytest.mark.parametrize("missing", ["sub", "exp"])
def test_required_claims(hs256_token_mode, missing):
    claims = {"sub": "42", "exp": int(time.time()) + 60}
    del claims[missing]

    assert _reason(jwt.encode(claims, SECRET, algorithm="HS256")) == "missing_claim"


@pytest.mark.parametrize(
    "claims",
    [{"sub": "has space"}, {"sub": "42", "groups": "ops"}, {"sub": "42", "topics": [1]}, {"sub": 42}],
)
def test_malformed_claims(hs256_token_mode, claims):
    payload = {"exp": int(time.time()) + 60, **claims}

    assert _reason(jwt.encode(payload, SECRET, algorithm="HS256")) == "invalid_claims"


def test_garbage_is_malformed(hs256_token_mode):
    assert _reason("not.a.jwt") == "malformed"
    assert _reason("x" * 9000) == "malformed"


def test_issuer_and_audience_checked_when_configured(hs256_token_mode, monkeypatch):
    monkeypatch.setenv("TOKEN_ISSUER", ISSUER)
    monkeypatch.setenv("TOKEN_AUDIENCE", AUDIENCE)

    assert default_verifier().verify(make_token(iss=ISSUER, aud=AUDIENCE)).user_id == "user-1"
    assert _reason(make_token(iss="https://evil.example/", aud=AUDIENCE)) == "invalid_issuer"
    assert _reason(make_token(iss=ISSUER, aud="someone-else")) == "invalid_audience"
    assert _reason(make_token(aud=AUDIENCE)) == "missing_claim"


def test_short_secret_is_a_configuration_error(aws_mock, monkeypatch):
    boto3.client("ssm", region_name=REGION).put_parameter(Name="/short", Value="too-short", Type="SecureString")
    monkeypatch.setenv("TOKEN_MODE", "hs256")
    monkeypatch.setenv("TOKEN_SECRET_SSM_PARAMETER", "/short")

    with pytest.raises(ConfigError, match="at least 32 bytes"):
        default_verifier().verify(make_token(key="too-short-but-used-anyway-by-an-attacker!"))


def test_secret_is_cached_between_calls(hs256_token_mode):
    verifier = default_verifier()
    verifier.verify(make_token())
    boto3.client("ssm", region_name=REGION).delete_parameter(Name="/realtime-test/token-secret")

    assert verifier.verify(make_token()).user_id == "user-1"


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
def jwks_mode(jwks_server, monkeypatch):
    url, fetches = jwks_server
    monkeypatch.setenv("TOKEN_MODE", "jwks")
    monkeypatch.setenv("TOKEN_JWKS_URL", url)
    monkeypatch.setenv("TOKEN_ISSUER", ISSUER)
    monkeypatch.setenv("TOKEN_AUDIENCE", AUDIENCE)
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


def test_jwks_endpoint_down_is_not_the_callers_fault(monkeypatch, rsa_key):
    monkeypatch.setenv("TOKEN_MODE", "jwks")
    monkeypatch.setenv("TOKEN_JWKS_URL", "http://127.0.0.1:9/jwks.json")  # discard port: refused
    monkeypatch.setenv("TOKEN_ISSUER", ISSUER)
    monkeypatch.setenv("TOKEN_AUDIENCE", AUDIENCE)

    with pytest.raises(jwt.PyJWKClientConnectionError):
        default_verifier().verify(_signed(rsa_key))


def test_verifier_can_be_built_directly_with_a_key_resolver():
    verifier = TokenVerifier(algorithms=["HS256"], resolve_key=lambda _token: SECRET.encode())

    assert verifier.verify(make_token("9")).topics == ("user:9", "all")
