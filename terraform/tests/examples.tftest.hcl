# The examples apply against the mocked provider: terraform/examples/local with
# ministack's endpoints (what `make up` applies) and with LocalStack's
# (docs/environments.md), so the documented variables are the ones that work.

mock_provider "aws" {
  source = "./tests/mocks"

  # The example's clinic table and its stream, which feed db_changes_sources.
  mock_resource "aws_dynamodb_table" {
    defaults = {
      arn        = "arn:aws:dynamodb:us-east-1:123456789012:table/rt-local-clinic"
      stream_arn = "arn:aws:dynamodb:us-east-1:123456789012:table/rt-local-clinic/stream/2026-01-01T00:00:00.000"
    }
  }
  mock_data "aws_dynamodb_table" {
    defaults = { name = "rt-local-clinic", stream_enabled = true, stream_view_type = "NEW_AND_OLD_IMAGES" }
  }
}

variables {
  lambda_code_zip  = "tests/fixtures/lambda.zip"
  lambda_layer_zip = "tests/fixtures/lambda.zip"
}

run "local_example_on_ministack" {
  command = apply

  module {
    source = "./examples/local"
  }

  variables {
    endpoint = "http://127.0.0.1:4566"
  }

  assert {
    condition     = module.realtime.websocket_management_endpoint == "http://127.0.0.1:4566/_aws/execute-api/${module.realtime.websocket_api_id}/live"
    error_message = "On ministack, process-events posts to <endpoint>/_aws/execute-api/<api>/<stage>."
  }

  assert {
    condition     = output.websocket_url == "ws://127.0.0.1:4566/_aws/execute-api/${module.realtime.websocket_api_id}/live"
    error_message = "On ministack, clients connect to ws://<host>/_aws/execute-api/<api>/<stage>, the module's own websocket_url."
  }

  assert {
    condition     = output.http_api_url == "http://127.0.0.1:4566/_aws/execute-api/${module.realtime.http_api_id}/$default"
    error_message = "On ministack, the HTTP API is <endpoint>/_aws/execute-api/<api>/$default, the module's own http_api_url."
  }
}

run "local_example_on_localstack" {
  command = apply

  module {
    source = "./examples/local"
  }

  variables {
    endpoint                      = "http://localhost.localstack.cloud:4566"
    websocket_management_endpoint = "http://{api_id}.execute-api.localhost.localstack.cloud:4566/{stage}"
  }

  assert {
    condition     = module.realtime.websocket_management_endpoint == "http://${module.realtime.websocket_api_id}.execute-api.localhost.localstack.cloud:4566/live"
    error_message = "On LocalStack, process-events posts to its execute-api host."
  }
}
