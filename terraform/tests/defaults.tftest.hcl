# The module with its defaults (HS256 token from SSM), applied against a mocked
# AWS provider: every computed value is known, so policies and wiring can be
# read back and checked.

# Mocks and inputs shared by every test file: tests/mocks/aws.tfmock.hcl, tests/terraform.tfvars.
mock_provider "aws" {
  source = "./tests/mocks"
}

################################################################################
# Events queue and DLQ
################################################################################

run "events_queue_redrives_to_the_dlq" {
  command = apply

  assert {
    condition     = jsondecode(aws_sqs_queue.events.redrive_policy).deadLetterTargetArn == aws_sqs_queue.dead_letter["events-dlq"].arn
    error_message = "The events queue must redrive to the DLQ."
  }

  assert {
    condition     = jsondecode(aws_sqs_queue.events.redrive_policy).maxReceiveCount == 100
    error_message = "The default maxReceiveCount must be 100: a valid event waits out hours of overload rather than reaching the DLQ."
  }

  assert {
    condition     = jsondecode(aws_sqs_queue_redrive_allow_policy.this["events-dlq"].redrive_allow_policy).sourceQueueArns == [aws_sqs_queue.events.arn]
    error_message = "Only the events queue may use the DLQ."
  }

  assert {
    condition     = aws_sqs_queue.dead_letter["events-dlq"].message_retention_seconds == 1209600
    error_message = "The DLQ must keep messages 14 days."
  }

  assert {
    condition     = aws_sqs_queue.events.sqs_managed_sse_enabled && aws_sqs_queue.dead_letter["events-dlq"].sqs_managed_sse_enabled
    error_message = "Both queues must be encrypted (SQS managed SSE without a KMS key)."
  }

  assert {
    condition     = aws_sqs_queue.events.receive_wait_time_seconds == 20
    error_message = "The events queue must use long polling."
  }

  assert {
    condition = alltrue([for p in [aws_sqs_queue_policy.this["events"], aws_sqs_queue_policy.this["events-dlq"]] :
      jsondecode(p.policy).Statement[0].Effect == "Deny" &&
      jsondecode(p.policy).Statement[0].Condition.Bool["aws:SecureTransport"] == "false"
    ])
    error_message = "Both queue policies must deny access without TLS."
  }

  assert {
    condition     = length(jsondecode(aws_sqs_queue_policy.this["events"].policy).Statement) == 1
    error_message = "Without events_queue_publisher_arns, the events queue policy restricts no publisher (IAM decides)."
  }
}

run "max_receive_count_is_configurable" {
  command = apply

  variables {
    events_queue_max_receive_count = 3
  }

  assert {
    condition     = jsondecode(aws_sqs_queue.events.redrive_policy).maxReceiveCount == 3
    error_message = "The redrive policy must use events_queue_max_receive_count."
  }
}

run "visibility_timeout_is_six_times_the_consumer_timeout" {
  command = plan

  variables {
    process_events_timeout = 90
  }

  assert {
    condition     = aws_sqs_queue.events.visibility_timeout_seconds == 6 * aws_lambda_function.this["process-events"].timeout
    error_message = "The visibility timeout must be computed as 6 x the process-events timeout."
  }
}

run "visibility_timeout_override_above_the_minimum_is_kept" {
  command = plan

  variables {
    events_queue_visibility_timeout_seconds = 900
  }

  assert {
    condition     = aws_sqs_queue.events.visibility_timeout_seconds == 900 && aws_sqs_queue.events.visibility_timeout_seconds >= 6 * aws_lambda_function.this["process-events"].timeout
    error_message = "An override of at least 6 x the timeout must be used as is."
  }
}

################################################################################
# process-events mapping
################################################################################

run "process_events_reports_batch_item_failures" {
  command = apply

  assert {
    condition     = aws_lambda_event_source_mapping.process_events["events"].function_response_types == toset(["ReportBatchItemFailures"])
    error_message = "The mapping must report partial batch failures, so one bad message never blocks its batch."
  }

  assert {
    condition     = aws_lambda_event_source_mapping.process_events["events"].event_source_arn == aws_sqs_queue.events.arn
    error_message = "The mapping must read the events queue."
  }

  assert {
    condition = (
      aws_lambda_event_source_mapping.process_events["events"].batch_size == 10 &&
      aws_lambda_event_source_mapping.process_events["events"].maximum_batching_window_in_seconds == 0 &&
      aws_lambda_event_source_mapping.process_events["events"].scaling_config[0].maximum_concurrency == 10
    )
    error_message = "The mapping defaults are batch 10, no batching window, maximum concurrency 10."
  }
}

################################################################################
# Tables
################################################################################

run "tables_expire_items_on_expiresAt" {
  command = apply

  assert {
    condition = alltrue([for t in [aws_dynamodb_table.this["connections"], aws_dynamodb_table.this["events"]] :
      t.ttl[0].enabled && t.ttl[0].attribute_name == "expiresAt"
    ])
    error_message = "Both tables must have TTL enabled on expiresAt."
  }

  assert {
    condition = (
      aws_dynamodb_table.this["connections"].hash_key == "pk" && aws_dynamodb_table.this["connections"].range_key == "sk" &&
      aws_dynamodb_table.this["events"].hash_key == "topic" && aws_dynamodb_table.this["events"].range_key == "seq" &&
      contains([for a in aws_dynamodb_table.this["events"].attribute : "${a.name}:${a.type}"], "seq:N")
    )
    error_message = "The key schemas must match docs/internals.md."
  }

  assert {
    condition = alltrue([for t in [aws_dynamodb_table.this["connections"], aws_dynamodb_table.this["events"]] :
      t.billing_mode == "PAY_PER_REQUEST" && t.point_in_time_recovery[0].enabled && !t.deletion_protection_enabled
    ])
    error_message = "Tables are on-demand, with point-in-time recovery and no deletion protection by default."
  }
}

################################################################################
# Functions
################################################################################

run "eight_functions_with_their_own_log_groups" {
  command = apply

  assert {
    condition     = keys(aws_lambda_function.this) == ["events-api", "fanout", "maintenance", "presence-checks", "process-events", "ws-connect", "ws-disconnect"]
    error_message = "The module must create exactly the eight functions of docs/internals.md."
  }

  assert {
    condition = alltrue([for k, f in aws_lambda_function.this :
      f.function_name == "rt-test-${k}" && f.handler == "realtime.handlers.${replace(k, "-", "_")}.handler" && f.runtime == "python3.12"
    ])
    error_message = "Function names and handlers must follow docs/internals.md."
  }

  assert {
    condition = alltrue([for k, f in aws_lambda_function.this :
      aws_cloudwatch_log_group.lambda[k].name == "/aws/lambda/${f.function_name}" &&
      f.logging_config[0].log_group == aws_cloudwatch_log_group.lambda[k].name &&
      aws_cloudwatch_log_group.lambda[k].retention_in_days == 30
    ])
    error_message = "Every function must log to its own /aws/lambda/<name> group, which has a retention."
  }

  assert {
    condition     = alltrue([for f in aws_lambda_function.this : f.architectures == tolist(["arm64"]) && f.layers == tolist([aws_lambda_layer_version.this.arn])])
    error_message = "Functions default to arm64 and share the dependencies layer."
  }

  assert {
    condition     = aws_lambda_function.this["process-events"].timeout == 60
    error_message = "process-events defaults to a 60 s timeout."
  }

  assert {
    condition     = alltrue([for f in aws_lambda_function.this : f.reserved_concurrent_executions == -1])
    error_message = "No function reserves concurrency by default."
  }
}

# Which function gets which variable: environment.tftest.hcl.
run "environment_values_follow_the_inputs" {
  command = apply

  assert {
    condition = (
      aws_lambda_function.this["process-events"].environment[0].variables["CONNECTIONS_ENDPOINT"] == "https://abcdef1234.execute-api.us-east-1.amazonaws.com/live" &&
      aws_lambda_function.this["process-events"].environment[0].variables["DLQ_URL"] == aws_sqs_queue.dead_letter["events-dlq"].url &&
      aws_lambda_function.this["process-events"].environment[0].variables["EVENT_TYPE_RULES"] == "[]" &&
      aws_lambda_function.this["process-events"].environment[0].variables["EVENT_RETENTION_SECONDS"] == "604800" &&
      aws_lambda_function.this["process-events"].environment[0].variables["MAX_DATA_BYTES"] == "32768" &&
      aws_lambda_function.this["process-events"].environment[0].variables["DELIVERY_CONCURRENCY"] == "32"
    )
    error_message = "process-events must get the @connections endpoint, DLQ URL, rules and limits."
  }

  assert {
    condition = alltrue([for k in ["ws-connect", "events-api"] :
      aws_lambda_function.this[k].environment[0].variables["TOKEN_MODE"] == "hs256" &&
      aws_lambda_function.this[k].environment[0].variables["TOKEN_SECRET_SSM_PARAMETER"] == "/rt-test/token-secret"
    ])
    error_message = "ws-connect and events-api must know where the token secret is."
  }
}

run "policies_are_least_privilege" {
  command = apply

  assert {
    condition = alltrue(flatten([for p in aws_iam_role_policy.lambda :
      [for s in jsondecode(p.policy).Statement : [for r in s.Resource : r != "*"]]
    ]))
    error_message = "No function policy may grant a \"*\" resource."
  }

  assert {
    condition = alltrue(flatten([for p in aws_iam_role_policy.lambda :
      [for s in jsondecode(p.policy).Statement : [for a in s.Action : !strcontains(a, "*")]]
    ]))
    error_message = "No function policy may use a wildcard action (such as dynamodb:*)."
  }

  assert {
    condition = alltrue([for k, p in aws_iam_role_policy.lambda :
      contains(jsondecode(p.policy).Statement[0].Resource, "${aws_cloudwatch_log_group.lambda[k].arn}:*")
    ])
    error_message = "Each function writes to its own log group only."
  }

  assert {
    condition = alltrue([for k in ["process-events", "fanout"] : flatten([for s in jsondecode(aws_iam_role_policy.lambda[k].policy).Statement :
      s.Resource if contains(s.Action, "execute-api:ManageConnections")
    ]) == [for method in ["POST", "DELETE"] : "arn:aws:execute-api:us-east-1:123456789012:abcdef1234/live/${method}/@connections/*"]])
    error_message = "process-events and fanout may post to and close connections of their own API and stage only."
  }

  assert {
    condition = toset(flatten([for s in jsondecode(aws_iam_role_policy.lambda["process-events"].policy).Statement :
      s.Action if contains(s.Resource, aws_dynamodb_table.this["events"].arn)
    ])) == toset(["dynamodb:BatchGetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"])
    error_message = "process-events reads counters and idempotency records in batches and writes events in transactions (Put and Update); it never deletes or scans."
  }

  assert {
    condition = toset([for k, p in aws_iam_role_policy.lambda : k if contains(flatten([
      for s in jsondecode(p.policy).Statement : s.Resource if contains(s.Action, "sqs:SendMessage")
    ]), aws_sqs_queue.fanout.arn)]) == toset(["process-events", "fanout"])
    error_message = "Only delivery queues fan-out jobs (pages and retries)."
  }

  assert {
    condition = toset(flatten([for s in jsondecode(aws_iam_role_policy.lambda["fanout"].policy).Statement :
      s.Action if s.Sid != "WriteOwnLogs" && !contains(s.Resource, local.presence.table_arn) && !contains(s.Resource, aws_sqs_queue.presence_checks[0].arn)
      ])) == toset([
      "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ChangeMessageVisibility", "sqs:SendMessage",
      "dynamodb:Query", "dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem", "execute-api:ManageConnections",
    ])
    error_message = "fanout consumes and feeds its queue, reads subscriptions and its jobs' stored events, removes gone connections and posts: nothing else (besides presence)."
  }

  assert {
    condition = alltrue([for k, p in aws_iam_role_policy.lambda :
      contains(flatten([for s in jsondecode(p.policy).Statement : s.Resource if contains(s.Action, "ssm:GetParameter")]),
      "arn:aws:ssm:us-east-1:123456789012:parameter/rt-test/token-secret") == contains(["ws-connect", "events-api"], k)
    ])
    error_message = "Only ws-connect and events-api may read the token secret parameter."
  }

  assert {
    condition = toset(flatten([for s in jsondecode(aws_iam_role_policy.lambda["events-api"].policy).Statement :
      s.Action if s.Sid != "WriteOwnLogs"
    ])) == toset(["dynamodb:Query", "dynamodb:BatchGetItem", "ssm:GetParameter"])
    error_message = "events-api may only query events, read presence items and read the token secret."
  }
}

################################################################################
# Fan-out
################################################################################

run "fanout_queue_redrives_to_its_dlq_and_feeds_the_fanout_function" {
  command = apply

  assert {
    condition = (
      jsondecode(aws_sqs_queue.fanout.redrive_policy).deadLetterTargetArn == aws_sqs_queue.dead_letter["fanout-dlq"].arn &&
      jsondecode(aws_sqs_queue_redrive_allow_policy.this["fanout-dlq"].redrive_allow_policy).sourceQueueArns == [aws_sqs_queue.fanout.arn]
    )
    error_message = "The fanout queue redrives to its own DLQ, which only it may use."
  }

  assert {
    condition = (
      aws_sqs_queue.fanout.sqs_managed_sse_enabled && aws_sqs_queue.dead_letter["fanout-dlq"].sqs_managed_sse_enabled &&
      jsondecode(aws_sqs_queue_policy.this["fanout"].policy).Statement[0].Condition.Bool["aws:SecureTransport"] == "false"
    )
    error_message = "The fanout queues are encrypted and TLS-only."
  }

  assert {
    condition     = aws_sqs_queue.fanout.visibility_timeout_seconds == 6 * aws_lambda_function.this["fanout"].timeout
    error_message = "The fanout queue's visibility timeout is 6 x its consumer's timeout."
  }

  assert {
    condition = (
      aws_lambda_function_recursion_config.fanout.recursive_loop == "Allow" &&
      aws_lambda_function_recursion_config.fanout.function_name == aws_lambda_function.this["fanout"].function_name
    )
    error_message = "fanout feeds the queue that invokes it (next pages, retries): on AWS, recursive loop detection would stop a broadcast of more than about 16 pages unless the loop is allowed."
  }

  assert {
    condition = (
      aws_lambda_event_source_mapping.fanout.event_source_arn == aws_sqs_queue.fanout.arn &&
      aws_lambda_event_source_mapping.fanout.function_response_types == toset(["ReportBatchItemFailures"]) &&
      aws_lambda_event_source_mapping.fanout.batch_size == 1 &&
      aws_lambda_event_source_mapping.fanout.scaling_config[0].maximum_concurrency == 20
    )
    error_message = "One job per fanout invocation, partial failures reported, at most fanout_maximum_concurrency at once."
  }

  assert {
    condition = (
      aws_cloudwatch_metric_alarm.this["fanout-dlq-not-empty"].dimensions.QueueName == aws_sqs_queue.dead_letter["fanout-dlq"].name &&
      aws_cloudwatch_metric_alarm.this["fanout-queue-age"].dimensions.QueueName == aws_sqs_queue.fanout.name &&
      aws_cloudwatch_metric_alarm.this["fanout-errors"].dimensions.FunctionName == "rt-test-fanout"
    )
    error_message = "The fanout DLQ, queue age and function errors are alarmed."
  }

  assert {
    condition = alltrue([for title in ["Fan-out queue (pages and retries)", "Delivery (process-events and fanout)"] :
      contains([for w in jsondecode(aws_cloudwatch_dashboard.this[0].dashboard_body).widgets : w.properties.title], title)
    ])
    error_message = "The dashboard shows the fanout queue and delivery's own counts."
  }
}

run "fanout_inputs_reach_the_functions" {
  command = apply

  variables {
    fanout_threshold           = 200
    fanout_page_size           = 2000
    fanout_concurrency         = 100
    fanout_maximum_concurrency = 50
    delivery_max_attempts      = 3
  }

  assert {
    condition = (
      aws_lambda_function.this["process-events"].environment[0].variables["FANOUT_THRESHOLD"] == "200" &&
      aws_lambda_function.this["process-events"].environment[0].variables["DELIVERY_MAX_ATTEMPTS"] == "3" &&
      aws_lambda_function.this["process-events"].environment[0].variables["FANOUT_QUEUE_URL"] == aws_sqs_queue.fanout.url &&
      aws_lambda_function.this["process-events"].environment[0].variables["EVENTS_QUEUE_URL"] == aws_sqs_queue.events.url &&
      aws_lambda_function.this["fanout"].environment[0].variables["FANOUT_PAGE_SIZE"] == "2000" &&
      aws_lambda_function.this["fanout"].environment[0].variables["FANOUT_CONCURRENCY"] == "100" &&
      aws_lambda_function.this["fanout"].environment[0].variables["DELIVERY_MAX_ATTEMPTS"] == "3" &&
      aws_lambda_event_source_mapping.fanout.scaling_config[0].maximum_concurrency == 50
    )
    error_message = "The fan-out inputs reach process-events, fanout and the mapping."
  }
}

run "fanout_function_has_its_own_memory_and_timeout" {
  command = plan

  variables {
    process_events_memory_size = 1024
    process_events_timeout     = 120
    fanout_memory_size         = 2048
    fanout_timeout             = 30
  }

  assert {
    condition = (
      aws_lambda_function.this["fanout"].memory_size == 2048 &&
      aws_lambda_function.this["fanout"].timeout == 30 &&
      aws_lambda_function.this["process-events"].memory_size == 1024 &&
      aws_lambda_function.this["process-events"].timeout == 120
    )
    error_message = "fanout_memory_size and fanout_timeout size the fanout function; process-events keeps its own inputs."
  }

  assert {
    condition     = aws_sqs_queue.fanout.visibility_timeout_seconds == 180 && aws_sqs_queue.events.visibility_timeout_seconds == 720
    error_message = "The fanout queue's visibility timeout is 6 x fanout_timeout, the events queue's 6 x process_events_timeout."
  }
}

run "fanout_function_defaults_are_the_earlier_shared_values" {
  command = plan

  assert {
    condition = (
      aws_lambda_function.this["fanout"].memory_size == aws_lambda_function.this["process-events"].memory_size &&
      aws_lambda_function.this["fanout"].timeout == aws_lambda_function.this["process-events"].timeout &&
      aws_sqs_queue.fanout.visibility_timeout_seconds == 360
    )
    error_message = "By default fanout keeps the memory (512 MB) and timeout (60 s) it shared with process-events, so upgrading changes nothing."
  }
}

run "limits_reach_the_functions" {
  command = apply

  variables {
    max_sessions_per_user = 3
    max_topics_per_token  = 20
  }

  assert {
    condition = (
      aws_lambda_function.this["ws-connect"].environment[0].variables["MAX_SESSIONS_PER_USER"] == "3" &&
      aws_lambda_function.this["ws-connect"].environment[0].variables["MAX_TOPICS_PER_TOKEN"] == "20" &&
      aws_lambda_function.this["events-api"].environment[0].variables["MAX_TOPICS_PER_TOKEN"] == "20"
    )
    error_message = "The limits reach $connect (sessions, topics) and the HTTP API (topics)."
  }
}

run "limits_are_bounded" {
  command = plan

  variables {
    max_sessions_per_user = 0
    max_topics_per_token  = 101
  }

  expect_failures = [var.max_sessions_per_user, var.max_topics_per_token]
}

run "fanout_inputs_are_bounded" {
  command = plan

  variables {
    fanout_threshold           = 0
    fanout_page_size           = 10001
    fanout_concurrency         = 257
    fanout_maximum_concurrency = 1
    delivery_max_attempts      = 2.5
  }

  expect_failures = [var.fanout_threshold, var.fanout_page_size, var.fanout_concurrency, var.fanout_maximum_concurrency, var.delivery_max_attempts]
}

run "fanout_function_size_is_bounded" {
  command = plan

  variables {
    fanout_memory_size = 64
    fanout_timeout     = 901
  }

  expect_failures = [var.fanout_memory_size, var.fanout_timeout]
}

################################################################################
# WebSocket API
################################################################################

run "websocket_routes_one_function_each" {
  command = apply

  assert {
    condition     = aws_apigatewayv2_api.websocket.protocol_type == "WEBSOCKET" && aws_apigatewayv2_api.websocket.route_selection_expression == "$request.body.action"
    error_message = "The WebSocket API selects routes on the frame's action."
  }

  assert {
    condition     = toset(keys(aws_apigatewayv2_route.websocket)) == toset(["$connect", "$disconnect", "ping", "$default"])
    error_message = "The WebSocket API must have the $connect, $disconnect, ping and $default routes."
  }

  assert {
    condition = (
      toset(keys(aws_apigatewayv2_integration.websocket)) == toset(["$connect", "$disconnect"]) &&
      alltrue([for k, i in aws_apigatewayv2_integration.websocket :
        i.integration_type == "AWS_PROXY" && aws_apigatewayv2_route.websocket[k].target == "integrations/${i.id}"
      ])
    )
    error_message = "$connect and $disconnect are each a Lambda proxy integration of their own."
  }

  assert {
    condition = alltrue([for k, p in aws_lambda_permission.websocket :
      p.source_arn == "arn:aws:execute-api:us-east-1:123456789012:abcdef1234/live/${k}" && p.principal == "apigateway.amazonaws.com"
    ])
    error_message = "Each route's permission must be scoped to that route on the stage."
  }
}

run "ping_and_default_are_two_way" {
  command = apply

  assert {
    condition     = toset(keys(aws_apigatewayv2_route_response.websocket)) == toset(["ping", "$default"])
    error_message = "ping and $default need route responses so AWS returns their answers."
  }

  assert {
    condition = alltrue([for k, r in aws_apigatewayv2_route_response.websocket :
      r.route_response_key == "$default" && r.route_id == aws_apigatewayv2_route.websocket[k].id
    ])
    error_message = "Route responses use the $default key on their own route."
  }

  assert {
    condition = (
      aws_apigatewayv2_route.websocket["ping"].route_response_selection_expression == "$default" &&
      aws_apigatewayv2_route.websocket["$default"].route_response_selection_expression == "$default" &&
      aws_apigatewayv2_route.websocket["$connect"].route_response_selection_expression == null
    )
    error_message = "Only the two-way routes select a route response."
  }
}

run "keepalives_and_unknown_actions_cost_no_lambda_call" {
  command = apply

  assert {
    condition = alltrue([for k in ["ping", "$default"] :
      aws_apigatewayv2_route.websocket[k].target == "integrations/${aws_apigatewayv2_integration.gateway_answer[k].id}" &&
      aws_apigatewayv2_integration.gateway_answer[k].integration_type == "MOCK" &&
      aws_apigatewayv2_integration.gateway_answer[k].request_templates["$default"] == "{\"statusCode\":200}" &&
      aws_apigatewayv2_integration.gateway_answer[k].template_selection_expression == "\\$default"
    ])
    error_message = "ping and $default must be answered by a mock integration (status 200), not a function: a keepalive costs no invocation and no write."
  }

  assert {
    condition     = !contains(keys(aws_lambda_function.this), "ws-ping") && !contains(keys(aws_lambda_permission.websocket), "ping")
    error_message = "No function serves pings (the gateway answers them)."
  }

  assert {
    condition = (
      jsondecode(aws_apigatewayv2_integration_response.gateway_answer["ping"].response_templates["$default"]) == { type = "pong" } &&
      jsondecode(aws_apigatewayv2_integration_response.gateway_answer["$default"].response_templates["$default"]) == {
        type  = "error"
        error = { code = "unknown_action", message = "frames are JSON objects with an action; supported actions: ping" }
      } &&
      alltrue([for r in aws_apigatewayv2_integration_response.gateway_answer :
        r.integration_response_key == "$default" && !strcontains(r.response_templates["$default"], "$") && !strcontains(r.response_templates["$default"], "#")
      ])
    )
    error_message = "The mocks answer the pong frame and the unknown_action error frame, as templates with nothing for VTL to expand."
  }
}

run "the_routes_any_socket_may_call_are_throttled_below_the_stage" {
  command = apply

  assert {
    condition = {
      for r in aws_apigatewayv2_stage.websocket.route_settings : r.route_key => [r.throttling_burst_limit, r.throttling_rate_limit]
      } == {
      "$connect" = [500, 250]
      "ping"     = [1250, 2500]
      "$default" = [50, 25]
    }
    error_message = "$connect, ping and $default must each have a throttle of their own (defaults, for 100,000 expected sockets: 500/250, 1250/2500 and 50/25), below the stage's 1800/2775; $connect's rate is half the account's 500 new connections/s."
  }
}

run "long_polls_and_presence_reads_are_throttled_below_the_http_stage" {
  command = apply

  assert {
    condition = {
      for r in aws_apigatewayv2_stage.http.route_settings : r.route_key => [r.throttling_burst_limit, r.throttling_rate_limit]
      } == {
      "GET /events"   = [50, 25]
      "GET /presence" = [100, 50]
    }
    error_message = "GET /events (25/s, burst 50: at most 25 x 20 s = 500 long polls, half the default account concurrency) and GET /presence (50/s, burst 100) must have throttles of their own by default."
  }

  assert {
    condition     = alltrue([for r in aws_apigatewayv2_stage.http.route_settings : contains(keys(aws_apigatewayv2_route.http), r.route_key)])
    error_message = "Route settings may only name routes the HTTP API has."
  }
}

run "without_presence_only_get_events_is_throttled" {
  command = plan

  variables {
    presence_enabled      = false
    http_route_throttling = { "GET /events" = { burst_limit = 20, rate_limit = 10 }, "GET /presence" = { burst_limit = 10, rate_limit = 5 } }
  }

  assert {
    condition     = [for r in aws_apigatewayv2_stage.http.route_settings : [r.route_key, r.throttling_burst_limit, r.throttling_rate_limit]] == [["GET /events", 20, 10]]
    error_message = "http_route_throttling sets the listed routes' throttles, and leaves out GET /presence when the API has no such route (API Gateway refuses settings for a missing route)."
  }
}

run "route_throttling_is_an_input" {
  command = plan

  variables {
    websocket_route_throttling = { "$connect" = { burst_limit = 100, rate_limit = 50 } }
  }

  assert {
    condition     = [for r in aws_apigatewayv2_stage.websocket.route_settings : [r.route_key, r.throttling_burst_limit, r.throttling_rate_limit]] == [["$connect", 100, 50]]
    error_message = "websocket_route_throttling must set the listed routes' throttles, and only theirs."
  }
}



run "both_stages_are_throttled_and_logged" {
  command = apply

  assert {
    condition = (
      aws_apigatewayv2_stage.websocket.default_route_settings[0].throttling_burst_limit == 1800 &&
      aws_apigatewayv2_stage.websocket.default_route_settings[0].throttling_rate_limit == 2775 &&
      aws_apigatewayv2_stage.http.default_route_settings[0].throttling_burst_limit == 500 &&
      aws_apigatewayv2_stage.http.default_route_settings[0].throttling_rate_limit == 1000
    )
    error_message = "Both stages must be throttled."
  }

  assert {
    condition = (
      aws_apigatewayv2_stage.websocket.access_log_settings[0].destination_arn == aws_cloudwatch_log_group.websocket_access.arn &&
      aws_apigatewayv2_stage.http.access_log_settings[0].destination_arn == aws_cloudwatch_log_group.http_access.arn &&
      aws_cloudwatch_log_group.websocket_access.retention_in_days == 30 &&
      aws_cloudwatch_log_group.http_access.retention_in_days == 30
    )
    error_message = "Both stages must write access logs to log groups with a retention."
  }

  assert {
    condition     = aws_apigatewayv2_stage.websocket.name == "live" && aws_apigatewayv2_stage.websocket.deployment_id == aws_apigatewayv2_deployment.websocket.id
    error_message = "The WebSocket stage serves the module's deployment."
  }
}

################################################################################
# HTTP API
################################################################################

run "http_api_serves_get_events" {
  command = apply

  assert {
    condition     = keys(aws_apigatewayv2_route.http) == ["GET /events", "GET /presence"] && aws_apigatewayv2_integration.http["GET /events"].payload_format_version == "2.0"
    error_message = "GET /events must reach events-api with payload format 2.0."
  }

  assert {
    condition     = aws_lambda_permission.http["GET /events"].source_arn == "arn:aws:execute-api:us-east-1:123456789012:http123456/*/GET/events"
    error_message = "The events-api permission must be scoped to the GET /events route."
  }

  assert {
    condition     = length(aws_apigatewayv2_api.http.cors_configuration) == 0
    error_message = "By default no origin may call the HTTP API from a browser: no CORS configuration."
  }

  assert {
    condition     = aws_apigatewayv2_stage.http.name == "$default" && aws_apigatewayv2_stage.http.auto_deploy
    error_message = "The HTTP API is served by an auto-deployed $default stage."
  }
}

################################################################################
# Monitoring and outputs
################################################################################

run "alarms_dashboard_and_outputs" {
  command = apply

  variables {
    alarm_actions = ["arn:aws:sns:us-east-1:123456789012:ops"]
  }

  assert {
    condition = alltrue([for a in aws_cloudwatch_metric_alarm.this :
      a.alarm_actions == toset(["arn:aws:sns:us-east-1:123456789012:ops"]) && a.tags.Name == a.alarm_name
    ])
    error_message = "Every alarm notifies alarm_actions."
  }

  assert {
    condition = toset([for a in aws_cloudwatch_metric_alarm.this : a.alarm_name]) == toset([
      "rt-test-events-dlq-not-empty", "rt-test-process-events-errors", "rt-test-events-queue-age",
      "rt-test-fanout-dlq-not-empty", "rt-test-fanout-errors", "rt-test-fanout-queue-age",
      "rt-test-presence-checks-dlq-not-empty", "rt-test-maintenance-errors",
      "rt-test-presence-events-dlq-not-empty", "rt-test-presence-events-queue-age",
      "rt-test-ws-connect-throttles", "rt-test-ws-disconnect-throttles",
      "rt-test-process-events-throttles", "rt-test-fanout-throttles", "rt-test-events-api-throttles",
      "rt-test-maintenance-throttles", "rt-test-presence-checks-throttles",
      "rt-test-process-events-concurrency", "rt-test-fanout-concurrency", "rt-test-presence-checks-concurrency",
      "rt-test-lambda-account-concurrency", "rt-test-delivery-lag", "rt-test-delivery-throttled",
      "rt-test-websocket-rejections", "rt-test-http-client-errors",
    ])
    error_message = "Without db_changes sources, the core, presence and saturation alarms exist, under their names."
  }

  assert {
    condition     = aws_cloudwatch_metric_alarm.this["events-dlq-not-empty"].dimensions.QueueName == aws_sqs_queue.dead_letter["events-dlq"].name && aws_cloudwatch_metric_alarm.this["events-dlq-not-empty"].threshold == 0
    error_message = "The DLQ alarm fires on any visible message."
  }

  assert {
    condition     = output.dashboard_name == "rt-test"
    error_message = "The dashboard is named after the module."
  }

  assert {
    condition = contains(flatten([for w in jsondecode(aws_cloudwatch_dashboard.this[0].dashboard_body).widgets :
      w.properties.metrics if startswith(w.properties.title, "Cleanup: ")
    ]), "EventsTableExpiredItems")
    error_message = "The dashboard shows what maintenance cleaned up and what TTL has yet to delete."
  }

  assert {
    condition     = jsondecode(output.publisher_policy_json).Statement == [{ Sid = "PublishEvents", Effect = "Allow", Action = ["sqs:SendMessage"], Resource = [aws_sqs_queue.events.arn] }]
    error_message = "The publisher policy only allows sending to the events queue."
  }

  assert {
    condition     = length(output.function_names) == 7 && length(output.log_group_names) == 9
    error_message = "Outputs list the seven functions and all nine log groups."
  }
}

################################################################################
# Client URLs
################################################################################

run "client_urls_are_api_gateways_own_on_aws" {
  command = apply

  assert {
    condition     = output.websocket_url == aws_apigatewayv2_stage.websocket.invoke_url
    error_message = "Without a custom management endpoint, clients connect to the WebSocket stage's own invoke URL."
  }

  assert {
    condition     = output.http_api_url == trimsuffix(aws_apigatewayv2_stage.http.invoke_url, "/")
    error_message = "Without a custom management endpoint, the HTTP API URL is its stage's invoke URL, without a trailing slash."
  }
}
