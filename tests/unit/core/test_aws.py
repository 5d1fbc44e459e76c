"""The AWS clients the functions build."""

from realtime.core import aws, lifecycle


def test_every_sdk_client_retries_in_legacy_mode_whatever_the_sdks_default(aws_mock, monkeypatch):
    # botocore 1.44 made standard mode the default; the functions' retries and docs/reliability.md assume legacy.
    monkeypatch.setenv("AWS_RETRY_MODE", "standard")
    lifecycle.reset()
    clients = [aws.dynamodb().meta.client, aws.sqs(), aws.ssm(), aws.secretsmanager()]

    assert [client.meta.config.retries["mode"] for client in clients] == ["legacy"] * 4
    lifecycle.reset()
