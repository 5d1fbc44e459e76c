# Optional settings: customer managed KMS key, Secrets Manager or JWKS tokens,
# X-Ray tracing, emulator endpoint template, toggles.

# Mocks and inputs shared by every test file: tests/mocks/aws.tfmock.hcl, tests/terraform.tfvars.
mock_provider "aws" {
  source = "./tests/mocks"

  # Another region than the shared mocks': ARNs the module builds follow it.
  mock_data "aws_region" {
    defaults = { name = "eu-west-1" }
  }
  mock_resource "aws_apigatewayv2_api" {
    defaults = {
      id            = "abcdef1234"
      execution_arn = "arn:aws:execute-api:eu-west-1:123456789012:abcdef1234"
    }
  }
}

variables {
  name = "rt-opt"
}

run "kms_key_and_secrets_manager_token" {
  command = apply

  variables {
    kms_key_arn = "arn:aws:kms:eu-west-1:123456789012:key/11111111-2222-3333-4444-555555555555"
    token = {
      secret_arn  = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:rt-opt-token-AbCdEf"
      kms_key_arn = "arn:aws:kms:eu-west-1:123456789012:key/99999999-8888-7777-6666-555555555555"
      issuer      = "https://auth.rt-opt.example/"
      audience    = "rt-opt"
    }
  }

  assert {
    condition = alltrue([for q in [aws_sqs_queue.events, aws_sqs_queue.dead_letter["events-dlq"]] :
      q.kms_master_key_id == var.kms_key_arn && !q.sqs_managed_sse_enabled
    ])
    error_message = "With a KMS key, both queues use it."
  }

  assert {
    condition = alltrue([for t in [aws_dynamodb_table.this["connections"], aws_dynamodb_table.this["events"]] :
      t.server_side_encryption[0].enabled && t.server_side_encryption[0].kms_key_arn == var.kms_key_arn
    ])
    error_message = "With a KMS key, both tables use it."
  }

  assert {
    condition     = alltrue([for f in aws_lambda_function.this : f.kms_key_arn == var.kms_key_arn])
    error_message = "With a KMS key, function environments are encrypted with it."
  }

  assert {
    condition = alltrue([for k, p in aws_iam_role_policy.lambda :
      contains(flatten([for s in jsondecode(p.policy).Statement : s.Resource if contains(s.Action, "secretsmanager:GetSecretValue")]),
      "arn:aws:secretsmanager:eu-west-1:123456789012:secret:rt-opt-token-AbCdEf") == contains(["ws-connect", "events-api"], k)
    ])
    error_message = "Only ws-connect and events-api may read the token secret, and only that secret."
  }

  assert {
    condition = alltrue([for k, p in aws_iam_role_policy.lambda :
      contains(flatten([for s in jsondecode(p.policy).Statement : s.Resource if contains(s.Action, "kms:Decrypt")]),
      "arn:aws:kms:eu-west-1:123456789012:key/99999999-8888-7777-6666-555555555555") == contains(["ws-connect", "events-api"], k)
    ])
    error_message = "Only the token readers may decrypt with the token secret's key."
  }

  assert {
    condition = alltrue(flatten([for p in aws_iam_role_policy.lambda :
      [for s in jsondecode(p.policy).Statement : [for r in s.Resource : r != "*"]]
    ]))
    error_message = "No function policy may grant a \"*\" resource, KMS included."
  }

  assert {
    condition = toset(flatten([for s in jsondecode(output.publisher_policy_json).Statement : s.Action])) == toset([
      "sqs:SendMessage", "kms:GenerateDataKey", "kms:Decrypt",
    ])
    error_message = "Publishers to a KMS-encrypted queue also need the key."
  }

  assert {
    condition = [for s in jsondecode(output.publisher_policy_json).Statement : s.Condition if s.Sid == "EncryptEvents"] == [
      { StringEquals = { "kms:ViaService" = "sqs.eu-west-1.amazonaws.com" } }
    ]
    error_message = "The publisher may use the key only through SQS (kms:ViaService), not decrypt anything else with it."
  }

  assert {
    condition     = aws_lambda_function.this["events-api"].environment[0].variables["TOKEN_SECRET_ARN"] == var.token.secret_arn
    error_message = "events-api must get the secret ARN."
  }
}

run "jwks_token_needs_no_secret_access" {
  command = apply

  variables {
    token = {
      mode                 = "jwks"
      jwks_url             = "https://auth.example.com/.well-known/jwks.json"
      issuer               = "https://auth.example.com/"
      audience             = "realtime"
      max_lifetime_seconds = 3600
    }
  }

  assert {
    condition = alltrue(flatten([for p in aws_iam_role_policy.lambda :
      [for s in jsondecode(p.policy).Statement : [for a in s.Action : !startswith(a, "ssm:") && !startswith(a, "secretsmanager:")]]
    ]))
    error_message = "In jwks mode no function reads a secret."
  }

  assert {
    condition = (
      aws_lambda_function.this["ws-connect"].environment[0].variables["TOKEN_MODE"] == "jwks" &&
      aws_lambda_function.this["ws-connect"].environment[0].variables["TOKEN_JWKS_URL"] == "https://auth.example.com/.well-known/jwks.json" &&
      aws_lambda_function.this["ws-connect"].environment[0].variables["TOKEN_ISSUER"] == "https://auth.example.com/" &&
      aws_lambda_function.this["ws-connect"].environment[0].variables["TOKEN_AUDIENCE"] == "realtime" &&
      aws_lambda_function.this["events-api"].environment[0].variables["TOKEN_MAX_LIFETIME_SECONDS"] == "3600" &&
      !contains(keys(aws_lambda_function.this["ws-connect"].environment[0].variables), "TOKEN_SECRET_SSM_PARAMETER")
    )
    error_message = "ws-connect gets the JWKS settings, issuer, audience and max lifetime, and no secret location."
  }

  assert {
    condition = alltrue([for k, f in aws_lambda_function.this :
      f.layers == (contains(["ws-connect", "events-api"], k)
        ? [aws_lambda_layer_version.this.arn, aws_lambda_layer_version.jwks[0].arn]
      : [aws_lambda_layer_version.this.arn])
    ])
    error_message = "In jwks mode the token verifiers, and only they, get the JWKS layer (cryptography) after the dependencies layer."
  }
}

run "hs256_token_ships_no_jwks_layer" {
  command = apply

  assert {
    condition     = length(aws_lambda_layer_version.jwks) == 0 && alltrue([for f in aws_lambda_function.this : f.layers == tolist([aws_lambda_layer_version.this.arn])])
    error_message = "In hs256 mode there is no JWKS layer: every function has the dependencies layer only."
  }
}

run "emulator_endpoint_template_and_toggles" {
  command = apply

  variables {
    token                            = { secret_ssm_parameter_name = "rt-opt-token", issuer = "https://auth.rt-opt.example/", audience = "rt-opt" }
    websocket_management_endpoint    = "http://127.0.0.1:4566/_aws/execute-api/{api_id}/{stage}"
    allow_custom_management_endpoint = true
    websocket_stage_name             = "v1"
    lambda_architecture              = "x86_64"
    lambda_tracing_mode              = "Active"
    create_alarms                    = false
    create_dashboard                 = false
    event_type_rules                 = [{ type = "order.*", audience = ["user:{data.userId}"] }]

    events_api_reserved_concurrency = 50
  }

  assert {
    condition = alltrue([for k, f in aws_lambda_function.this :
      f.reserved_concurrent_executions == (k == "events-api" ? 50 : -1)
    ])
    error_message = "events_api_reserved_concurrency reserves (and caps) events-api's concurrency, and only its."
  }

  assert {
    condition     = aws_lambda_function.this["process-events"].environment[0].variables["CONNECTIONS_ENDPOINT"] == "http://127.0.0.1:4566/_aws/execute-api/abcdef1234/v1"
    error_message = "The endpoint template's {api_id} and {stage} must be replaced."
  }

  assert {
    condition     = jsondecode(aws_lambda_function.this["process-events"].environment[0].variables["EVENT_TYPE_RULES"]) == [{ type = "order.*", audience = ["user:{data.userId}"] }]
    error_message = "process-events gets the rules as JSON."
  }

  assert {
    condition = contains(flatten([for s in jsondecode(aws_iam_role_policy.lambda["ws-connect"].policy).Statement : s.Resource]),
    "arn:aws:ssm:eu-west-1:123456789012:parameter/rt-opt-token")
    error_message = "A parameter name without a leading slash still gives the right ARN."
  }

  assert {
    condition     = alltrue([for f in aws_lambda_function.this : f.architectures == tolist(["x86_64"]) && f.tracing_config[0].mode == "Active" && f.environment[0].variables["POWERTOOLS_TRACE_DISABLED"] == "false"])
    error_message = "Architecture and tracing (Lambda mode and Powertools Tracer) follow the inputs."
  }

  assert {
    condition     = length(aws_iam_role_policy_attachment.xray) == length(aws_lambda_function.this)
    error_message = "Active tracing attaches the X-Ray write policy to every role."
  }

  assert {
    condition     = length(aws_cloudwatch_metric_alarm.this) == 0 && output.dashboard_name == null
    error_message = "Alarms and dashboard can be turned off."
  }

  assert {
    condition     = aws_lambda_permission.websocket["$disconnect"].source_arn == "arn:aws:execute-api:eu-west-1:123456789012:abcdef1234/v1/$disconnect"
    error_message = "Route permissions follow the stage name."
  }
}

run "an_allow_list_of_publishers_closes_the_events_queue_to_everyone_else" {
  command = apply

  variables {
    events_queue_publisher_arns = ["arn:aws:iam::123456789012:role/shop-api", "arn:aws:iam::123456789012:role/shop-worker-*"]
  }

  assert {
    condition = jsonencode([for s in jsondecode(aws_sqs_queue_policy.this["events"].policy).Statement : s if s.Sid == "OnlyListedPublishers"]) == jsonencode([{
      Sid       = "OnlyListedPublishers"
      Effect    = "Deny"
      Principal = "*"
      Action    = "sqs:SendMessage"
      Resource  = aws_sqs_queue.events.arn
      # The listed publishers, then the module's function roles (the mock gives them all one ARN).
      Condition = { ArnNotLike = { "aws:PrincipalArn" = concat(var.events_queue_publisher_arns, ["arn:aws:iam::123456789012:role/mock-role"]) } }
    }])
    error_message = "With publishers listed, the events queue refuses SendMessage to any other principal but the module's own functions."
  }

  assert {
    condition = (
      !anytrue([for s in jsondecode(aws_sqs_queue_policy.this["events-dlq"].policy).Statement : s.Sid == "OnlyListedPublishers"]) &&
      !anytrue([for s in jsondecode(aws_sqs_queue_policy.this["events-dlq"].policy).Statement : contains(try(s.Condition.ArnNotLike["aws:PrincipalArn"], []), "arn:aws:iam::123456789012:role/shop-api")])
    )
    error_message = "The allow-list is the events queue's only: the publishers are not let into its DLQ (which takes process-events and the operators, queue_policies.tftest.hcl)."
  }
}


run "cors_allows_the_applications_origins_only" {
  command = apply

  variables {
    cors_allow_origins = ["https://app.example.com", "http://localhost:3000"]
  }

  assert {
    condition = (
      aws_apigatewayv2_api.http.cors_configuration[0].allow_origins == toset(["https://app.example.com", "http://localhost:3000"]) &&
      aws_apigatewayv2_api.http.cors_configuration[0].allow_methods == toset(["GET", "OPTIONS"]) &&
      aws_apigatewayv2_api.http.cors_configuration[0].allow_headers == toset(["authorization", "content-type"])
    )
    error_message = "CORS must allow exactly the listed origins, GET/OPTIONS and the Authorization/Content-Type headers."
  }

  assert {
    condition     = aws_apigatewayv2_api.http.cors_configuration[0].expose_headers == toset(["retry-after"])
    error_message = "A throttled poll's Retry-After must be readable by the browser client (CORS expose_headers), and nothing else is exposed."
  }
}


################################################################################
# Custom domains
################################################################################

run "custom_domains_give_the_clients_your_names" {
  command = apply

  variables {
    custom_domains = {
      websocket = { domain_name = "ws.example.com", certificate_arn = "arn:aws:acm:us-east-1:123456789012:certificate/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0" }
      http      = { domain_name = "events.example.com", certificate_arn = "arn:aws:acm:us-east-1:123456789012:certificate/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0" }
    }
  }

  assert {
    condition     = output.websocket_url == "wss://ws.example.com" && output.http_api_url == "https://events.example.com"
    error_message = "With custom domains, the clients' URLs are those names."
  }

  assert {
    condition = (
      aws_apigatewayv2_api_mapping.this["websocket"].api_id == aws_apigatewayv2_api.websocket.id &&
      aws_apigatewayv2_api_mapping.this["websocket"].stage == aws_apigatewayv2_stage.websocket.id &&
      aws_apigatewayv2_api_mapping.this["http"].api_id == aws_apigatewayv2_api.http.id &&
      aws_apigatewayv2_api_mapping.this["http"].stage == aws_apigatewayv2_stage.http.id
    )
    error_message = "Each name maps to its own API's stage."
  }

  assert {
    condition = alltrue([for d in aws_apigatewayv2_domain_name.this :
    d.domain_name_configuration[0].endpoint_type == "REGIONAL" && d.domain_name_configuration[0].security_policy == "TLS_1_2"])
    error_message = "Custom domains are regional and refuse TLS below 1.2."
  }

  assert {
    condition     = startswith(aws_lambda_function.this["process-events"].environment[0].variables.CONNECTIONS_ENDPOINT, "https://${aws_apigatewayv2_api.websocket.id}.execute-api.")
    error_message = "Delivery keeps posting to the execute-api @connections endpoint."
  }
}

run "only_the_websocket_name_leaves_the_http_url_alone" {
  command = apply

  variables {
    custom_domains = {
      websocket = { domain_name = "ws.example.com", certificate_arn = "arn:aws:acm:us-east-1:123456789012:certificate/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0" }
    }
  }

  assert {
    condition     = output.http_api_url == trimsuffix(aws_apigatewayv2_stage.http.invoke_url, "/") && keys(aws_apigatewayv2_api_mapping.this) == ["websocket"]
    error_message = "A name for one API changes only that API's URL."
  }
}

run "a_custom_domain_needs_an_acm_certificate_arn" {
  command = plan

  variables {
    custom_domains = { http = { domain_name = "events.example.com", certificate_arn = "not-an-arn" } }
  }

  expect_failures = [var.custom_domains]
}
