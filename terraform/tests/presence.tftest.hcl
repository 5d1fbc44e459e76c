# Presence wiring: the presence table, the offline-check delay queue and its
# consumer, the maintenance schedule and its role, GET /presence, the presence
# environment and permissions of every function, the presence inputs, and the
# module without presence (presence_enabled = false).

# Mocks and inputs shared by every test file: tests/mocks/aws.tfmock.hcl, tests/terraform.tfvars.
mock_provider "aws" {
  source = "./tests/mocks"
}

################################################################################
# maintenance: schedule -> role -> function
################################################################################

run "maintenance_runs_on_a_schedule_with_its_own_role" {
  command = apply

  assert {
    condition = (
      aws_scheduler_schedule.maintenance.name == "rt-test-maintenance" &&
      aws_scheduler_schedule.maintenance.schedule_expression == "rate(5 minutes)" &&
      aws_scheduler_schedule.maintenance.state == "ENABLED" &&
      aws_scheduler_schedule.maintenance.flexible_time_window[0].mode == "OFF"
    )
    error_message = "maintenance runs every 5 minutes by default, on time."
  }

  assert {
    condition = (
      aws_scheduler_schedule.maintenance.target[0].arn == aws_lambda_function.this["maintenance"].arn &&
      aws_scheduler_schedule.maintenance.target[0].role_arn == aws_iam_role.maintenance_scheduler.arn &&
      aws_scheduler_schedule.maintenance.target[0].role_arn == "arn:aws:iam::123456789012:role/rt-test-maintenance-scheduler"
    )
    error_message = "The schedule targets the maintenance function with its own role."
  }

  assert {
    condition = (
      jsondecode(aws_iam_role.maintenance_scheduler.assume_role_policy).Statement[0].Principal.Service == "scheduler.amazonaws.com" &&
      jsondecode(aws_iam_role.maintenance_scheduler.assume_role_policy).Statement[0].Condition.StringEquals["aws:SourceAccount"] == "123456789012"
    )
    error_message = "Only EventBridge Scheduler of this account may assume the role."
  }

  assert {
    condition = jsondecode(aws_iam_role_policy.maintenance_scheduler.policy).Statement == [{
      Sid      = "InvokeMaintenance"
      Effect   = "Allow"
      Action   = ["lambda:InvokeFunction"]
      Resource = [aws_lambda_function.this["maintenance"].arn]
    }]
    error_message = "The scheduler role may invoke the maintenance function and nothing else."
  }

  assert {
    condition = (
      aws_lambda_function.this["maintenance"].handler == "realtime.handlers.maintenance.handler" &&
      aws_lambda_function.this["maintenance"].timeout == 300 &&
      aws_cloudwatch_log_group.lambda["maintenance"].name == "/aws/lambda/rt-test-maintenance"
    )
    error_message = "maintenance has its handler, a 5-minute timeout and its own log group."
  }

  assert {
    condition = (
      aws_lambda_function.this["maintenance"].environment[0].variables["STALE_CONNECTION_SECONDS"] == "300" &&
      aws_lambda_function.this["maintenance"].environment[0].variables["CONNECTIONS_ENDPOINT"] == "https://abcdef1234.execute-api.us-east-1.amazonaws.com/live" &&
      aws_lambda_function.this["maintenance"].environment[0].variables["PRESENCE_CHECKS_QUEUE_URL"] == aws_sqs_queue.presence_checks[0].url &&
      aws_lambda_function.this["maintenance"].environment[0].variables["PRESENCE_EVENTS_QUEUE_URL"] == aws_sqs_queue.presence_events[0].url
    )
    error_message = "maintenance knows the stale threshold; maintenance the @connections endpoint and both queues."
  }

  assert {
    condition     = aws_cloudwatch_metric_alarm.this["maintenance-errors"].dimensions.FunctionName == "rt-test-maintenance"
    error_message = "maintenance failures raise an alarm."
  }
}

################################################################################
# Offline checks: the delay queue and its consumer
################################################################################

run "offline_checks_wait_the_grace_period_on_a_delay_queue" {
  command = apply

  assert {
    condition = (
      aws_sqs_queue.presence_checks[0].delay_seconds == 5 &&
      aws_sqs_queue.presence_checks[0].visibility_timeout_seconds >= 6 * aws_lambda_function.this["presence-checks"].timeout
    )
    error_message = "The presence-checks queue delays every message by the grace period (default 5 s)."
  }

  assert {
    condition = alltrue([for k in ["ws-disconnect", "process-events", "maintenance"] :
      aws_lambda_function.this[k].environment[0].variables["PRESENCE_GRACE_SECONDS"] == "5" &&
      aws_lambda_function.this[k].environment[0].variables["PRESENCE_CHECKS_QUEUE_URL"] == aws_sqs_queue.presence_checks[0].url
    ])
    error_message = "Every function that can end a user's last session schedules checks with the grace period."
  }

  assert {
    condition = (
      aws_lambda_event_source_mapping.presence_checks[0].event_source_arn == aws_sqs_queue.presence_checks[0].arn &&
      aws_lambda_event_source_mapping.presence_checks[0].function_name == aws_lambda_function.this["presence-checks"].arn &&
      aws_lambda_event_source_mapping.presence_checks[0].function_response_types == toset(["ReportBatchItemFailures"]) &&
      aws_lambda_event_source_mapping.presence_checks[0].maximum_batching_window_in_seconds == 0
    )
    error_message = "presence-checks consumes the queue with partial batch failures and no extra wait."
  }

  assert {
    condition = (
      jsondecode(aws_sqs_queue.presence_checks[0].redrive_policy).deadLetterTargetArn == aws_sqs_queue.dead_letter["presence-checks-dlq"].arn &&
      jsondecode(aws_sqs_queue_redrive_allow_policy.this["presence-checks-dlq"].redrive_allow_policy).sourceQueueArns == [aws_sqs_queue.presence_checks[0].arn] &&
      aws_cloudwatch_metric_alarm.this["presence-checks-dlq-not-empty"].dimensions.QueueName == aws_sqs_queue.dead_letter["presence-checks-dlq"].name
    )
    error_message = "Checks that keep failing go to their own, alarmed DLQ."
  }

  assert {
    condition = alltrue([for k in ["presence-checks", "presence-checks-dlq"] :
      jsondecode(aws_sqs_queue_policy.this[k].policy).Statement[0].Effect == "Deny" &&
      jsondecode(aws_sqs_queue_policy.this[k].policy).Statement[0].Condition.Bool["aws:SecureTransport"] == "false"
    ]) && aws_sqs_queue.presence_checks[0].sqs_managed_sse_enabled && aws_sqs_queue.dead_letter["presence-checks-dlq"].sqs_managed_sse_enabled
    error_message = "Both presence queues are encrypted and refuse access without TLS."
  }

  assert {
    condition = (
      aws_lambda_function.this["presence-checks"].environment[0].variables["PRESENCE_EVENTS_QUEUE_URL"] == aws_sqs_queue.presence_events[0].url &&
      aws_lambda_function.this["presence-checks"].environment[0].variables["GROUP_PRESENCE_ENABLED"] == "false"
    )
    error_message = "presence-checks announces offline on the presence-events queue; group presence is off by default."
  }
}

################################################################################
# Presence events: a queue of the module's own, into process-events
################################################################################

run "presence_events_have_a_queue_only_the_module_sends_to" {
  command = apply

  assert {
    condition = (
      aws_lambda_event_source_mapping.process_events["presence-events"].event_source_arn == aws_sqs_queue.presence_events[0].arn &&
      aws_lambda_event_source_mapping.process_events["presence-events"].function_name == aws_lambda_function.this["process-events"].arn &&
      aws_lambda_event_source_mapping.process_events["presence-events"].function_response_types == toset(["ReportBatchItemFailures"]) &&
      aws_lambda_function.this["process-events"].environment[0].variables["PRESENCE_EVENTS_QUEUE_ARN"] == aws_sqs_queue.presence_events[0].arn &&
      aws_lambda_function.this["process-events"].environment[0].variables["PRESENCE_EVENTS_QUEUE_URL"] == aws_sqs_queue.presence_events[0].url
    )
    error_message = "process-events consumes the presence-events queue too, and knows it by its ARN."
  }

  assert {
    condition = alltrue([for k in ["ws-connect", "presence-checks", "maintenance"] :
      aws_lambda_function.this[k].environment[0].variables["PRESENCE_EVENTS_QUEUE_URL"] == aws_sqs_queue.presence_events[0].url &&
      !contains(keys(aws_lambda_function.this[k].environment[0].variables), "EVENTS_QUEUE_URL")
    ])
    error_message = "The functions that announce presence send to the presence-events queue, not the producers' queue."
  }

  assert {
    condition = jsonencode([for s in jsondecode(aws_sqs_queue_policy.this["presence-events"].policy).Statement : s if s.Sid == "OnlyOwnSenders"]) == jsonencode([{
      Sid       = "OnlyOwnSenders"
      Effect    = "Deny"
      Principal = "*"
      Action    = "sqs:SendMessage"
      Resource  = aws_sqs_queue.presence_events[0].arn
      Condition = { ArnNotLike = { "aws:PrincipalArn" = sort(distinct([for k in ["maintenance", "presence-checks", "ws-connect"] : aws_iam_role.lambda[k].arn])) } }
    }])
    error_message = "The presence-events queue refuses every sender but the roles of ws-connect, presence-checks and maintenance."
  }

  assert {
    condition = (
      jsondecode(aws_sqs_queue_policy.this["presence-events"].policy).Statement[0].Condition.Bool["aws:SecureTransport"] == "false" &&
      aws_sqs_queue.presence_events[0].sqs_managed_sse_enabled &&
      aws_sqs_queue.presence_events[0].visibility_timeout_seconds == aws_sqs_queue.events.visibility_timeout_seconds &&
      jsondecode(aws_sqs_queue.presence_events[0].redrive_policy).deadLetterTargetArn == aws_sqs_queue.dead_letter["presence-events-dlq"].arn &&
      jsondecode(aws_sqs_queue_redrive_allow_policy.this["presence-events-dlq"].redrive_allow_policy).sourceQueueArns == [aws_sqs_queue.presence_events[0].arn] &&
      aws_cloudwatch_metric_alarm.this["presence-events-dlq-not-empty"].dimensions.QueueName == aws_sqs_queue.dead_letter["presence-events-dlq"].name &&
      aws_cloudwatch_metric_alarm.this["presence-events-queue-age"].dimensions.QueueName == aws_sqs_queue.presence_events[0].name &&
      output.presence_events_queue_arn == aws_sqs_queue.presence_events[0].arn
    )
    error_message = "The presence-events queue is encrypted, TLS-only, redriven to its own alarmed DLQ, and alarmed when late, like the events queue."
  }
}

################################################################################
# Presence table and GET /presence
################################################################################

run "presence_table_keeps_one_item_per_user_forever" {
  command = apply

  assert {
    condition = (
      aws_dynamodb_table.this["presence"].name == "rt-test-presence" &&
      aws_dynamodb_table.this["presence"].hash_key == "userId" &&
      aws_dynamodb_table.this["presence"].range_key == null &&
      aws_dynamodb_table.this["presence"].billing_mode == "PAY_PER_REQUEST"
    )
    error_message = "The presence table is keyed by userId, on demand."
  }

  assert {
    condition     = length(aws_dynamodb_table.this["presence"].ttl) == 0 || !try(aws_dynamodb_table.this["presence"].ttl[0].enabled, false)
    error_message = "Presence items never expire: a user's version must never restart."
  }

  assert {
    condition     = aws_dynamodb_table.this["presence"].point_in_time_recovery[0].enabled && aws_dynamodb_table.this["presence"].server_side_encryption[0].enabled
    error_message = "The presence table has point-in-time recovery and encryption like the others."
  }

  assert {
    condition = alltrue([for k in ["ws-connect", "ws-disconnect", "process-events", "events-api", "presence-checks", "maintenance"] :
      aws_lambda_function.this[k].environment[0].variables["PRESENCE_TABLE"] == "rt-test-presence"
    ])
    error_message = "Every function that reads or writes presence knows its table."
  }

  assert {
    condition = (
      aws_apigatewayv2_route.http["GET /presence"].route_key == "GET /presence" &&
      aws_apigatewayv2_integration.http["GET /presence"].integration_uri == aws_lambda_function.this["events-api"].invoke_arn &&
      aws_lambda_permission.http["GET /presence"].source_arn == "arn:aws:execute-api:us-east-1:123456789012:http123456/*/GET/presence" &&
      aws_lambda_function.this["events-api"].environment[0].variables["MAX_PRESENCE_USERS"] == "50"
    )
    error_message = "GET /presence reaches events-api, which answers at most 50 users by default."
  }

  assert {
    condition = (
      output.presence_table_name == "rt-test-presence" &&
      output.maintenance_function_name == "rt-test-maintenance" &&
      output.maintenance_schedule_name == "rt-test-maintenance" &&
      output.presence_checks_queue_url == aws_sqs_queue.presence_checks[0].url &&
      output.presence_grace_period_seconds == 5
    )
    error_message = "The presence outputs name the table, function, schedule and queue."
  }
}

################################################################################
# Least privilege
################################################################################

run "presence_permissions_are_least_privilege" {
  command = apply

  assert {
    condition = alltrue(flatten([for k in ["presence-checks", "maintenance"] : [
      for s in jsondecode(aws_iam_role_policy.lambda[k].policy).Statement : [
        for r in s.Resource : r != "*" && !strcontains(join(",", s.Action), "*")
      ]
    ]]))
    error_message = "The presence functions get no \"*\" resource and no wildcard action."
  }

  assert {
    condition = alltrue([for k, expected in {
      "events-api"      = "dynamodb:BatchGetItem"
      "maintenance"     = "dynamodb:GetItem,dynamodb:Scan,dynamodb:UpdateItem"
      "presence-checks" = "dynamodb:GetItem,dynamodb:UpdateItem"
      "process-events"  = "dynamodb:UpdateItem"
      "fanout"          = "dynamodb:UpdateItem"
      "ws-connect"      = "dynamodb:GetItem,dynamodb:UpdateItem"
      "ws-disconnect"   = "dynamodb:UpdateItem"
      } : join(",", sort(flatten([for s in jsondecode(aws_iam_role_policy.lambda[k].policy).Statement :
        s.Action if contains(s.Resource, "arn:aws:dynamodb:us-east-1:123456789012:table/rt-test-presence")
    ]))) == expected])
    error_message = "Each function touches the presence table only as it needs to (events-api only reads)."
  }

  assert {
    condition = toset([for k, p in aws_iam_role_policy.lambda : k if contains(flatten([
      for s in jsondecode(p.policy).Statement : s.Resource if contains(s.Action, "sqs:SendMessage")
    ]), aws_sqs_queue.presence_checks[0].arn)]) == toset(["ws-disconnect", "process-events", "fanout", "maintenance"])
    error_message = "Only the functions that end sessions schedule offline checks."
  }

  assert {
    condition = toset([for k, p in aws_iam_role_policy.lambda : k if contains(flatten([
      for s in jsondecode(p.policy).Statement : s.Resource if contains(s.Action, "sqs:ReceiveMessage")
    ]), aws_sqs_queue.presence_checks[0].arn)]) == toset(["presence-checks"])
    error_message = "Only presence-checks consumes the checks queue."
  }

  assert {
    condition = toset([for k, p in aws_iam_role_policy.lambda : k if contains(flatten([
      for s in jsondecode(p.policy).Statement : s.Resource if contains(s.Action, "sqs:SendMessage")
    ]), aws_sqs_queue.presence_events[0].arn)]) == toset(["ws-connect", "presence-checks", "maintenance"])
    error_message = "Only the functions that flip presence publish presence events."
  }

  assert {
    condition = toset([for k, p in aws_iam_role_policy.lambda : k if contains(flatten([
      for s in jsondecode(p.policy).Statement : s.Resource if contains(s.Action, "sqs:ReceiveMessage")
    ]), aws_sqs_queue.presence_events[0].arn)]) == toset(["process-events"])
    error_message = "Only process-events consumes the presence-events queue."
  }

  assert {
    condition = flatten([for s in jsondecode(aws_iam_role_policy.lambda["maintenance"].policy).Statement :
      s.Resource if contains(s.Action, "execute-api:ManageConnections")
    ]) == [for method in ["GET", "POST", "DELETE"] : "arn:aws:execute-api:us-east-1:123456789012:abcdef1234/live/${method}/@connections/*"]
    error_message = "maintenance may only ask about, post to and close connections of its own API and stage."
  }

  assert {
    condition = toset(flatten([for s in jsondecode(aws_iam_role_policy.lambda["maintenance"].policy).Statement :
      s.Action if contains(s.Resource, "arn:aws:dynamodb:us-east-1:123456789012:table/rt-test-connections")
    ])) == toset(["dynamodb:Scan", "dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem", "dynamodb:DescribeTable", "dynamodb:UpdateItem"])
    error_message = "maintenance scans connection records and removes dead ones; it writes no record, only its scans' positions (UpdateItem)."
  }
}

################################################################################
# Without presence
################################################################################

run "presence_can_be_left_out" {
  command = apply

  variables {
    presence_enabled = false
  }

  assert {
    condition = (
      keys(aws_dynamodb_table.this) == ["connections", "events"] &&
      length(aws_sqs_queue.presence_checks) == 0 && length(aws_lambda_event_source_mapping.presence_checks) == 0 &&
      length(aws_sqs_queue.presence_events) == 0 && keys(aws_lambda_event_source_mapping.process_events) == ["events"] &&
      keys(aws_sqs_queue.dead_letter) == ["events-dlq", "fanout-dlq"] && keys(aws_sqs_queue_policy.this) == ["events", "events-dlq", "fanout", "fanout-dlq"] &&
      keys(aws_lambda_function.this) == ["events-api", "fanout", "maintenance", "process-events", "ws-connect", "ws-disconnect"]
    )
    error_message = "Without presence there is no presence table, presence-checks queue, DLQ, mapping or function."
  }

  assert {
    condition     = keys(aws_apigatewayv2_route.http) == ["GET /events"] && keys(aws_lambda_permission.http) == ["GET /events"]
    error_message = "Without presence there is no GET /presence route."
  }

  assert {
    condition = keys(aws_cloudwatch_metric_alarm.this) == [
      "delivery-lag", "delivery-throttled", "events-api-throttles", "events-dlq-not-empty", "events-queue-age",
      "fanout-concurrency", "fanout-dlq-not-empty", "fanout-errors", "fanout-queue-age", "fanout-throttles",
      "http-client-errors", "lambda-account-concurrency", "maintenance-errors", "maintenance-throttles",
      "process-events-concurrency", "process-events-errors", "process-events-throttles",
      "websocket-rejections", "ws-connect-throttles", "ws-disconnect-throttles",
    ]
    error_message = "Without presence the presence-checks DLQ, throttle and concurrency alarms go; maintenance's stay."
  }

  assert {
    condition = alltrue(flatten([for p in aws_iam_role_policy.lambda : [for s in jsondecode(p.policy).Statement :
      !contains(["PresenceTable", "ScheduleOfflineChecks", "PublishPresenceEvents", "ConsumePresenceEvents", "FindOrphanSessions", "EncryptedPresenceQueues"], s.Sid)
    ]]))
    error_message = "Without presence no function may touch presence (table, checks queue, presence events)."
  }

  assert {
    condition = (
      aws_scheduler_schedule.maintenance.target[0].arn == aws_lambda_function.this["maintenance"].arn &&
      toset(flatten([for s in jsondecode(aws_iam_role_policy.lambda["maintenance"].policy).Statement : s.Action if s.Sid != "WriteOwnLogs"])) ==
      toset(["dynamodb:Scan", "dynamodb:GetItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem", "dynamodb:DescribeTable", "dynamodb:UpdateItem", "execute-api:ManageConnections"])
    )
    error_message = "maintenance still runs on its schedule, removing connections whose $disconnect was missed (and their place in the user's session count) and samples the tables for expired items, and may do nothing more."
  }

  assert {
    condition = toset([for k, p in aws_iam_role_policy.lambda : k if contains(flatten([
      for s in jsondecode(p.policy).Statement : s.Action if s.Sid == "ConnectionsTable"
    ]), "dynamodb:UpdateItem")]) == toset(["ws-connect", "ws-disconnect", "process-events", "fanout", "maintenance"])
    error_message = "Without presence, whoever opens or ends a session updates the user's session count in the connections table."
  }

  assert {
    condition = (
      output.presence_table_name == null && output.presence_table_arn == null && output.presence_checks_queue_url == null &&
      output.presence_checks_dlq_url == null && output.presence_grace_period_seconds == null && output.presence_events_queue_arn == null &&
      output.maintenance_function_name == "rt-test-maintenance"
    )
    error_message = "The presence outputs are null without presence; maintenance's remain."
  }
}

################################################################################
# Inputs
################################################################################

run "presence_inputs_reach_the_functions_queue_and_schedule" {
  command = apply

  variables {
    presence_grace_period_seconds      = 12
    group_presence_enabled             = true
    max_presence_users_per_request     = 20
    maintenance_schedule_expression    = "rate(1 minute)"
    stale_connection_threshold_seconds = 300
  }

  assert {
    condition = (
      aws_sqs_queue.presence_checks[0].delay_seconds == 12 &&
      aws_lambda_function.this["ws-disconnect"].environment[0].variables["PRESENCE_GRACE_SECONDS"] == "12" &&
      aws_lambda_function.this["ws-connect"].environment[0].variables["GROUP_PRESENCE_ENABLED"] == "true" &&
      aws_lambda_function.this["presence-checks"].environment[0].variables["GROUP_PRESENCE_ENABLED"] == "true" &&
      aws_lambda_function.this["events-api"].environment[0].variables["MAX_PRESENCE_USERS"] == "20" &&
      aws_lambda_function.this["maintenance"].environment[0].variables["STALE_CONNECTION_SECONDS"] == "300" &&
      aws_scheduler_schedule.maintenance.schedule_expression == "rate(1 minute)"
    )
    error_message = "Grace period, group presence, request size, stale threshold and schedule follow the inputs."
  }
}

run "a_kms_key_encrypts_the_presence_resources" {
  command = apply

  variables {
    kms_key_arn = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"
  }

  assert {
    condition = (
      aws_sqs_queue.presence_checks[0].kms_master_key_id == var.kms_key_arn &&
      aws_sqs_queue.dead_letter["presence-checks-dlq"].kms_master_key_id == var.kms_key_arn &&
      aws_sqs_queue.presence_events[0].kms_master_key_id == var.kms_key_arn &&
      aws_sqs_queue.dead_letter["presence-events-dlq"].kms_master_key_id == var.kms_key_arn &&
      aws_dynamodb_table.this["presence"].server_side_encryption[0].kms_key_arn == var.kms_key_arn &&
      aws_scheduler_schedule.maintenance.kms_key_arn == var.kms_key_arn
    )
    error_message = "With a KMS key, the presence queues, table and schedule use it."
  }

  assert {
    condition = alltrue([for k in ["ws-connect", "ws-disconnect", "presence-checks", "maintenance"] :
      contains(flatten([for s in jsondecode(aws_iam_role_policy.lambda[k].policy).Statement :
      s.Action if contains(s.Resource, var.kms_key_arn)]), "kms:GenerateDataKey")
    ])
    error_message = "Functions sending to the encrypted queues may generate data keys."
  }
}

run "grace_period_must_be_a_whole_number_of_seconds_up_to_900" {
  command = plan

  variables {
    presence_grace_period_seconds = 901
  }

  expect_failures = [var.presence_grace_period_seconds]
}

run "grace_period_cannot_be_zero" {
  command = plan

  variables {
    presence_grace_period_seconds = 0
  }

  expect_failures = [var.presence_grace_period_seconds]
}

run "grace_period_cannot_be_fractional" {
  command = plan

  variables {
    presence_grace_period_seconds = 2.5
  }

  expect_failures = [var.presence_grace_period_seconds]
}

run "schedule_must_be_a_rate_or_cron_expression" {
  command = plan

  variables {
    maintenance_schedule_expression = "every 5 minutes"
  }

  expect_failures = [var.maintenance_schedule_expression]
}

run "schedule_rate_must_be_positive" {
  command = plan

  variables {
    maintenance_schedule_expression = "rate(0 minutes)"
  }

  expect_failures = [var.maintenance_schedule_expression]
}

run "stale_threshold_is_at_least_a_minute" {
  command = plan

  variables {
    stale_connection_threshold_seconds = 30
  }

  expect_failures = [var.stale_connection_threshold_seconds]
}

run "presence_requests_ask_about_at_most_100_users" {
  command = plan

  variables {
    max_presence_users_per_request = 101
  }

  expect_failures = [var.max_presence_users_per_request]
}
