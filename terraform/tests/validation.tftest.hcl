# Inputs the module must refuse at plan time, before anything is created.

# Mocks and inputs shared by every test file: tests/mocks/aws.tfmock.hcl, tests/terraform.tfvars.
mock_provider "aws" {
  source = "./tests/mocks"
}

################################################################################
# Token
################################################################################

run "token_mode_must_be_hs256_or_jwks" {
  command = plan

  variables {
    token = { mode = "rs256", secret_ssm_parameter_name = "/rt-test/token-secret", issuer = "https://auth.example.com/", audience = "realtime" }
  }

  expect_failures = [var.token]
}

run "hs256_needs_a_secret" {
  command = plan

  variables {
    token = { mode = "hs256", issuer = "https://auth.example.com/", audience = "realtime" }
  }

  expect_failures = [var.token]
}

run "hs256_takes_only_one_secret_source" {
  command = plan

  variables {
    token = {
      secret_ssm_parameter_name = "/rt-test/token-secret"
      secret_arn                = "arn:aws:secretsmanager:us-east-1:123456789012:secret:rt-test-AbCdEf"
      issuer                    = "https://auth.example.com/"
      audience                  = "realtime"
    }
  }

  expect_failures = [var.token]
}



run "jwks_needs_its_url" {
  command = plan

  variables {
    token = { mode = "jwks", issuer = "https://auth.example.com/", audience = "realtime" }
  }

  expect_failures = [var.token]
}

run "jwks_needs_its_layer" {
  command = plan

  variables {
    token                 = { mode = "jwks", jwks_url = "https://auth.example.com/.well-known/jwks.json", issuer = "https://auth.example.com/", audience = "realtime" }
    lambda_jwks_layer_zip = null
  }

  expect_failures = [var.lambda_jwks_layer_zip]
}

run "jwks_takes_no_shared_secret" {
  command = plan

  variables {
    token = {
      mode                      = "jwks"
      jwks_url                  = "https://auth.example.com/.well-known/jwks.json"
      issuer                    = "https://auth.example.com/"
      audience                  = "realtime"
      secret_ssm_parameter_name = "/rt-test/token-secret"
    }
  }

  expect_failures = [var.token]
}

run "jwks_url_must_be_https" {
  command = plan

  variables {
    token = { mode = "jwks", jwks_url = "http://auth.example.com/jwks.json", issuer = "https://auth.example.com/", audience = "realtime" }
  }

  expect_failures = [var.token]
}

run "secret_arn_must_be_a_secrets_manager_arn" {
  command = plan

  variables {
    token = { secret_arn = "arn:aws:ssm:us-east-1:123456789012:parameter/rt-test/token-secret", issuer = "https://auth.example.com/", audience = "realtime" }
  }

  expect_failures = [var.token]
}

run "ssm_parameter_is_a_name_not_an_arn" {
  command = plan

  variables {
    token = { secret_ssm_parameter_name = "arn:aws:ssm:us-east-1:123456789012:parameter/rt-test/token-secret", issuer = "https://auth.example.com/", audience = "realtime" }
  }

  expect_failures = [var.token]
}

################################################################################
# Queue and consumer
################################################################################

run "visibility_timeout_below_six_times_the_consumer_timeout_is_refused" {
  command = plan

  variables {
    process_events_timeout                  = 60
    events_queue_visibility_timeout_seconds = 300
  }

  expect_failures = [var.events_queue_visibility_timeout_seconds]
}

run "maximum_concurrency_is_at_least_two" {
  command = plan

  variables {
    process_events_maximum_concurrency = 1
  }

  expect_failures = [var.process_events_maximum_concurrency]
}

run "events_api_reserved_concurrency_is_a_whole_number_of_at_least_one" {
  command = plan

  variables {
    events_api_reserved_concurrency = 0
  }

  expect_failures = [var.events_api_reserved_concurrency]
}

run "large_batches_need_a_batching_window" {
  command = plan

  variables {
    process_events_batch_size = 100
  }

  expect_failures = [var.process_events_maximum_batching_window_in_seconds]
}

################################################################################
# Other inputs
################################################################################

run "name_is_short_lowercase" {
  command = plan

  variables {
    name = "RT_Test"
  }

  expect_failures = [var.name]
}

run "architecture_is_arm64_or_x86_64" {
  command = plan

  variables {
    lambda_architecture = "arm"
  }

  expect_failures = [var.lambda_architecture]
}

run "log_retention_is_a_cloudwatch_value" {
  command = plan

  variables {
    log_retention_in_days = 10
  }

  expect_failures = [var.log_retention_in_days]
}

run "event_type_rules_need_a_type" {
  command = plan

  variables {
    event_type_rules = [{ type = "", audience = ["all"] }]
  }

  expect_failures = [var.event_type_rules]
}

run "event_type_rules_need_an_audience" {
  command = plan

  variables {
    event_type_rules = [{ type = "order.*", audience = [] }]
  }

  expect_failures = [var.event_type_rules]
}

run "management_endpoint_is_a_template_with_api_id" {
  command = plan

  variables {
    websocket_management_endpoint    = "http://127.0.0.1:4566/_aws/execute-api/abc/live"
    allow_custom_management_endpoint = true # even a custom endpoint needs {api_id}
  }

  expect_failures = [var.websocket_management_endpoint]
}

# Issue 20, finding 9: every frame goes to the management endpoint, so only API Gateway's own is taken unless asked.
run "management_endpoint_over_plain_http_needs_the_custom_flag" {
  command = plan

  variables {
    websocket_management_endpoint = "http://127.0.0.1:4566/_aws/execute-api/{api_id}/{stage}"
  }

  expect_failures = [var.websocket_management_endpoint]
}

run "management_endpoint_on_another_host_needs_the_custom_flag" {
  command = plan

  variables {
    websocket_management_endpoint = "https://{api_id}.execute-api.us-east-1.amazonaws.com.attacker.example/{stage}"
  }

  expect_failures = [var.websocket_management_endpoint]
}

run "management_endpoint_of_api_gateway_is_accepted" {
  command = apply

  variables {
    websocket_management_endpoint = "https://{api_id}.execute-api.eu-west-1.amazonaws.com/{stage}"
  }

  assert {
    condition     = aws_lambda_function.this["fanout"].environment[0].variables["CONNECTIONS_ENDPOINT"] == "https://abcdef1234.execute-api.eu-west-1.amazonaws.com/live"
    error_message = "API Gateway's own endpoint (another region's, say) needs no flag, and its placeholders are filled in."
  }
}

run "management_endpoint_of_another_partition_with_a_fixed_stage_is_accepted" {
  command = apply

  variables {
    websocket_management_endpoint = "https://{api_id}.execute-api.cn-north-1.amazonaws.com.cn/live"
  }

  assert {
    condition     = aws_lambda_function.this["process-events"].environment[0].variables["CONNECTIONS_ENDPOINT"] == "https://abcdef1234.execute-api.cn-north-1.amazonaws.com.cn/live"
    error_message = "An execute-api endpoint of another AWS partition, with the stage written out, needs no flag."
  }
}

run "event_type_rules_audience_entries_are_topics" {
  command = plan

  variables {
    event_type_rules = [{ type = "order.*", audience = ["user:{data.userId}", "room:{data.roomId}"] }]
  }

  expect_failures = [var.event_type_rules]
}

run "event_type_rules_placeholders_name_data_fields" {
  command = plan

  variables {
    event_type_rules = [{ type = "order.*", audience = ["user:{userId}"] }]
  }

  expect_failures = [var.event_type_rules]
}

run "subscription_shards_keys_are_topics_or_kinds" {
  command = plan

  variables {
    subscription_shards = { "room:*" = 4 }
  }

  expect_failures = [var.subscription_shards]
}

run "subscription_shards_counts_are_1_to_64" {
  command = plan

  variables {
    subscription_shards = { all = 65 }
  }

  expect_failures = [var.subscription_shards]
}
