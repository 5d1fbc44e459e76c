# Shared mocks of the AWS provider, loaded by every test file with
#   mock_provider "aws" { source = "./tests/mocks" }
# Blocks inside a test file's mock_provider replace these ones.

mock_data "aws_region" {
  defaults = { name = "us-east-1" }
}
mock_data "aws_caller_identity" {
  defaults = { account_id = "123456789012" }
}
mock_data "aws_partition" {
  defaults = { partition = "aws", dns_suffix = "amazonaws.com" }
}

mock_resource "aws_sqs_queue" {
  defaults = {
    arn = "arn:aws:sqs:us-east-1:123456789012:mock-queue"
    url = "https://sqs.us-east-1.amazonaws.com/123456789012/mock-queue"
  }
}
mock_resource "aws_dynamodb_table" {
  defaults = { arn = "arn:aws:dynamodb:us-east-1:123456789012:table/mock-table" }
}
mock_resource "aws_cloudwatch_log_group" {
  defaults = { arn = "arn:aws:logs:us-east-1:123456789012:log-group:mock-log-group" }
}
mock_resource "aws_iam_role" {
  defaults = { arn = "arn:aws:iam::123456789012:role/mock-role" }
}
mock_resource "aws_lambda_layer_version" {
  defaults = { arn = "arn:aws:lambda:us-east-1:123456789012:layer:mock-layer:1" }
}
mock_resource "aws_lambda_function" {
  defaults = {
    arn        = "arn:aws:lambda:us-east-1:123456789012:function:mock-function"
    invoke_arn = "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:mock-function/invocations"
  }
}
mock_resource "aws_apigatewayv2_api" {
  defaults = {
    id            = "abcdef1234"
    execution_arn = "arn:aws:execute-api:us-east-1:123456789012:abcdef1234"
    api_endpoint  = "wss://abcdef1234.execute-api.us-east-1.amazonaws.com"
  }
}
mock_resource "aws_apigatewayv2_stage" {
  defaults = { invoke_url = "wss://abcdef1234.execute-api.us-east-1.amazonaws.com/live" }
}
mock_resource "aws_scheduler_schedule" {
  defaults = { arn = "arn:aws:scheduler:us-east-1:123456789012:schedule/default/rt-test-maintenance" }
}

# Distinct values where a test tells two resources of the same type apart.
override_resource {
  target = aws_sqs_queue.events
  values = {
    arn = "arn:aws:sqs:us-east-1:123456789012:rt-test-events"
    url = "https://sqs.us-east-1.amazonaws.com/123456789012/rt-test-events"
  }
}

override_resource {
  target = aws_sqs_queue.dead_letter["events-dlq"]
  values = {
    arn = "arn:aws:sqs:us-east-1:123456789012:rt-test-events-dlq"
    url = "https://sqs.us-east-1.amazonaws.com/123456789012/rt-test-events-dlq"
  }
}

override_resource {
  target = aws_sqs_queue.presence_checks
  values = {
    arn = "arn:aws:sqs:us-east-1:123456789012:rt-test-presence-checks"
    url = "https://sqs.us-east-1.amazonaws.com/123456789012/rt-test-presence-checks"
  }
}

override_resource {
  target = aws_sqs_queue.dead_letter["presence-checks-dlq"]
  values = {
    arn = "arn:aws:sqs:us-east-1:123456789012:rt-test-presence-checks-dlq"
    url = "https://sqs.us-east-1.amazonaws.com/123456789012/rt-test-presence-checks-dlq"
  }
}

override_resource {
  target = aws_sqs_queue.presence_events
  values = {
    arn = "arn:aws:sqs:us-east-1:123456789012:rt-test-presence-events"
    url = "https://sqs.us-east-1.amazonaws.com/123456789012/rt-test-presence-events"
  }
}

override_resource {
  target = aws_sqs_queue.dead_letter["presence-events-dlq"]
  values = {
    arn = "arn:aws:sqs:us-east-1:123456789012:rt-test-presence-events-dlq"
    url = "https://sqs.us-east-1.amazonaws.com/123456789012/rt-test-presence-events-dlq"
  }
}

override_resource {
  target = aws_sqs_queue.dead_letter["db-changes-failures"]
  values = {
    arn  = "arn:aws:sqs:us-east-1:123456789012:rt-test-db-changes-failures"
    url  = "https://sqs.us-east-1.amazonaws.com/123456789012/rt-test-db-changes-failures"
    name = "rt-test-db-changes-failures"
  }
}

override_resource {
  target = aws_dynamodb_table.this["connections"]
  values = { arn = "arn:aws:dynamodb:us-east-1:123456789012:table/rt-test-connections" }
}

override_resource {
  target = aws_dynamodb_table.this["events"]
  values = { arn = "arn:aws:dynamodb:us-east-1:123456789012:table/rt-test-events" }
}

override_resource {
  target = aws_dynamodb_table.this["presence"]
  values = { arn = "arn:aws:dynamodb:us-east-1:123456789012:table/rt-test-presence" }
}

override_resource {
  target = aws_iam_role.maintenance_scheduler
  values = { arn = "arn:aws:iam::123456789012:role/rt-test-maintenance-scheduler" }
}

override_resource {
  target = aws_apigatewayv2_api.http
  values = {
    id            = "http123456"
    execution_arn = "arn:aws:execute-api:us-east-1:123456789012:http123456"
    api_endpoint  = "https://http123456.execute-api.us-east-1.amazonaws.com"
  }
}
