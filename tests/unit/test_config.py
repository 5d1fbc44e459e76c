import pytest
from realtime import config
from realtime.config import ConfigError


def test_missing_variable_is_named(monkeypatch):
    monkeypatch.delenv("EVENTS_TABLE", raising=False)

    with pytest.raises(ConfigError, match="EVENTS_TABLE"):
        config.events_table()


def test_values_are_read_once_until_reset(monkeypatch):
    monkeypatch.setenv("EVENTS_TABLE", "first")
    assert config.events_table() == "first"

    monkeypatch.setenv("EVENTS_TABLE", "second")
    assert config.events_table() == "first"

    config.reset()
    assert config.events_table() == "second"


def test_integer_defaults_and_bounds(monkeypatch):
    assert config.max_data_bytes() == config.DEFAULT_MAX_DATA_BYTES

    monkeypatch.setenv("DELIVERY_CONCURRENCY", "lots")
    with pytest.raises(ConfigError, match="DELIVERY_CONCURRENCY must be an integer"):
        config.delivery_concurrency()

    monkeypatch.setenv("MAX_DATA_BYTES", str(config.MAX_DATA_BYTES_LIMIT + 1))
    config.reset()
    with pytest.raises(ConfigError, match="MAX_DATA_BYTES must be between"):
        config.max_data_bytes()


def test_hs256_needs_exactly_one_secret_source(monkeypatch):
    monkeypatch.setenv("TOKEN_MODE", "hs256")
    with pytest.raises(ConfigError, match="exactly one of TOKEN_SECRET_SSM_PARAMETER or TOKEN_SECRET_ARN"):
        config.token_settings()

    monkeypatch.setenv("TOKEN_SECRET_SSM_PARAMETER", "/p")
    config.reset()
    settings = config.token_settings()
    assert (settings.mode, settings.secret_ssm_parameter, settings.secret_arn) == ("hs256", "/p", None)


def test_jwks_needs_issuer_and_audience(monkeypatch):
    monkeypatch.setenv("TOKEN_MODE", "jwks")
    monkeypatch.setenv("TOKEN_JWKS_URL", "https://issuer.example/.well-known/jwks.json")
    monkeypatch.setenv("TOKEN_ISSUER", "https://issuer.example/")

    with pytest.raises(ConfigError, match="TOKEN_AUDIENCE"):
        config.token_settings()


def test_unknown_token_mode(monkeypatch):
    monkeypatch.setenv("TOKEN_MODE", "rs256")

    with pytest.raises(ConfigError, match="TOKEN_MODE must be 'hs256' or 'jwks'"):
        config.token_settings()
