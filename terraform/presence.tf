################################################################################
# Presence
#
# Per-user state in the presence table (hash key userId; see docs/internals.md).
# $connect/$disconnect/ping and delivery update it; the last session's end
# schedules an offline check on the presence-checks queue, delayed by the grace
# period, consumed by presence-checks. maintenance runs on an EventBridge
# Scheduler schedule to remove connections whose $disconnect was missed and to
# repair presence. Presence events go to the events queue like any event.
################################################################################

locals {
  presence_checks_timeout = 30
  maintenance_timeout     = 300 # a run stops starting work 10 s before; the next run carries on

  presence_table_statement = {
    for k, actions in {
      "ws-connect"      = ["dynamodb:UpdateItem"]
      "ws-disconnect"   = ["dynamodb:UpdateItem"]
      "ws-ping"         = ["dynamodb:UpdateItem"]
      "process-events"  = ["dynamodb:UpdateItem"]
      "events-api"      = ["dynamodb:BatchGetItem"]
      "presence-checks" = ["dynamodb:UpdateItem", "dynamodb:GetItem"]
      "maintenance"     = ["dynamodb:Scan", "dynamodb:UpdateItem", "dynamodb:GetItem"]
      } : k => {
      sid       = "PresenceTable"
      actions   = actions
      resources = [aws_dynamodb_table.this["presence"].arn]
    }
  }

  schedule_offline_checks_statement = {
    sid       = "ScheduleOfflineChecks"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.presence_checks.arn]
  }

  publish_presence_events_statement = {
    sid       = "PublishPresenceEvents"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.events.arn]
  }

  # Sending to (or receiving from) a queue encrypted with the module's key; kms:Decrypt comes with every function.
  presence_kms_statements = var.kms_key_arn == null ? [] : [{
    sid       = "EncryptedPresenceQueues"
    actions   = ["kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
  }]

  # Environment and permissions presence adds to core functions (merged in main.tf).
  presence_environment = {
    "ws-connect" = {
      PRESENCE_TABLE         = aws_dynamodb_table.this["presence"].name
      EVENTS_QUEUE_URL       = aws_sqs_queue.events.url
      GROUP_PRESENCE_ENABLED = tostring(var.group_presence_enabled)
    }
    "ws-disconnect" = {
      PRESENCE_TABLE            = aws_dynamodb_table.this["presence"].name
      PRESENCE_CHECKS_QUEUE_URL = aws_sqs_queue.presence_checks.url
      PRESENCE_GRACE_SECONDS    = tostring(var.presence_grace_period_seconds)
    }
    "ws-ping" = {
      PRESENCE_TABLE = aws_dynamodb_table.this["presence"].name
    }
    # A connection found gone while delivering also ends its session.
    "process-events" = {
      PRESENCE_TABLE            = aws_dynamodb_table.this["presence"].name
      PRESENCE_CHECKS_QUEUE_URL = aws_sqs_queue.presence_checks.url
      PRESENCE_GRACE_SECONDS    = tostring(var.presence_grace_period_seconds)
    }
    "events-api" = {
      PRESENCE_TABLE     = aws_dynamodb_table.this["presence"].name
      MAX_PRESENCE_USERS = tostring(var.max_presence_users_per_request)
    }
  }

  presence_statements = {
    "ws-connect"     = concat([local.presence_table_statement["ws-connect"], local.publish_presence_events_statement], local.presence_kms_statements)
    "ws-disconnect"  = concat([local.presence_table_statement["ws-disconnect"], local.schedule_offline_checks_statement], local.presence_kms_statements)
    "ws-ping"        = [local.presence_table_statement["ws-ping"]]
    "process-events" = [local.presence_table_statement["process-events"], local.schedule_offline_checks_statement]
    "events-api"     = [local.presence_table_statement["events-api"]]
  }

  # Functions of this feature, merged into local.functions (see main.tf).
  presence_functions = {
    "presence-checks" = {
      description = "Delayed offline checks: marks a user offline when the grace period passed without a new session"
      handler     = "realtime.handlers.presence_checks.handler"
      memory_size = var.lambda_memory_size
      timeout     = local.presence_checks_timeout
      environment = merge(local.common_environment, {
        PRESENCE_TABLE         = aws_dynamodb_table.this["presence"].name
        EVENTS_QUEUE_URL       = aws_sqs_queue.events.url
        GROUP_PRESENCE_ENABLED = tostring(var.group_presence_enabled)
      })
    }
    "maintenance" = {
      description = "Scheduled: removes connections whose $disconnect was missed and repairs presence"
      handler     = "realtime.handlers.maintenance.handler"
      memory_size = var.lambda_memory_size
      timeout     = local.maintenance_timeout
      environment = merge(local.common_environment, {
        CONNECTIONS_TABLE         = aws_dynamodb_table.this["connections"].name
        CONNECTIONS_ENDPOINT      = local.websocket_management_endpoint
        PRESENCE_TABLE            = aws_dynamodb_table.this["presence"].name
        PRESENCE_CHECKS_QUEUE_URL = aws_sqs_queue.presence_checks.url
        PRESENCE_GRACE_SECONDS    = tostring(var.presence_grace_period_seconds)
        EVENTS_QUEUE_URL          = aws_sqs_queue.events.url
        GROUP_PRESENCE_ENABLED    = tostring(var.group_presence_enabled)
        STALE_CONNECTION_SECONDS  = tostring(var.stale_connection_threshold_seconds)
      })
    }
  }

  presence_function_statements = {
    "presence-checks" = concat(
      [
        {
          sid       = "ConsumePresenceChecks"
          actions   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ChangeMessageVisibility"]
          resources = [aws_sqs_queue.presence_checks.arn]
        },
        local.presence_table_statement["presence-checks"],
        local.publish_presence_events_statement,
      ],
      local.presence_kms_statements,
    )
    "maintenance" = concat(
      [
        {
          # Scan for stale connection records; BatchGetItem to find sessions whose record is gone;
          # GetItem/DeleteItem/BatchWriteItem to remove a dead connection and its subscriptions.
          sid       = "ConnectionsTable"
          actions   = ["dynamodb:Scan", "dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"]
          resources = [aws_dynamodb_table.this["connections"].arn]
        },
        local.presence_table_statement["maintenance"],
        local.schedule_offline_checks_statement,
        local.publish_presence_events_statement,
        {
          # GetConnection is GET @connections/{id}.
          sid       = "AskConnections"
          actions   = ["execute-api:ManageConnections"]
          resources = ["${aws_apigatewayv2_api.websocket.execution_arn}/${var.websocket_stage_name}/GET/@connections/*"]
        },
      ],
      local.presence_kms_statements,
    )
  }
}

################################################################################
# Offline checks: a delay queue (the grace period; its DLQ is in sqs.tf)
################################################################################

resource "aws_sqs_queue" "presence_checks" {
  name = "${var.name}-presence-checks"

  # Every check waits the grace period (the functions also set DelaySeconds on each message).
  delay_seconds              = var.presence_grace_period_seconds
  visibility_timeout_seconds = 6 * local.presence_checks_timeout
  message_retention_seconds  = 86400 # a check older than a day is decided by maintenance anyway
  receive_wait_time_seconds  = 20

  sqs_managed_sse_enabled           = var.kms_key_arn == null ? true : null
  kms_master_key_id                 = var.kms_key_arn
  kms_data_key_reuse_period_seconds = var.kms_key_arn == null ? null : 300

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dead_letter["presence-checks-dlq"].arn
    maxReceiveCount     = 5
  })

  tags = merge(var.tags, { Name = "${var.name}-presence-checks" })
}

resource "aws_lambda_event_source_mapping" "presence_checks" {
  event_source_arn = aws_sqs_queue.presence_checks.arn
  function_name    = aws_lambda_function.this["presence-checks"].arn

  batch_size                         = 10
  maximum_batching_window_in_seconds = 0 # the grace period is the only wait
  function_response_types            = ["ReportBatchItemFailures"]

  scaling_config {
    maximum_concurrency = 5
  }

  tags = merge(var.tags, { Name = "${var.name}-presence-checks" })
}

################################################################################
# maintenance schedule (EventBridge Scheduler) and the role it invokes with
################################################################################

resource "aws_iam_role" "maintenance_scheduler" {
  name        = "${var.name}-maintenance-scheduler"
  description = "Lets EventBridge Scheduler invoke ${local.function_names["maintenance"]}"

  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "SchedulerAssumeRole"
      Effect    = "Allow"
      Principal = { Service = "scheduler.amazonaws.com" }
      Action    = "sts:AssumeRole"
      # Only schedules of this account (confused-deputy protection).
      Condition = { StringEquals = { "aws:SourceAccount" = local.account_id } }
    }]
  })

  tags = merge(var.tags, { Name = "${var.name}-maintenance-scheduler" })
}

resource "aws_iam_role_policy" "maintenance_scheduler" {
  name = "${var.name}-maintenance-scheduler-invoke"
  role = aws_iam_role.maintenance_scheduler.id

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid      = "InvokeMaintenance"
      Effect   = "Allow"
      Action   = ["lambda:InvokeFunction"]
      Resource = [aws_lambda_function.this["maintenance"].arn]
    }]
  })
}

resource "aws_scheduler_schedule" "maintenance" {
  name        = "${var.name}-maintenance"
  description = "Runs ${local.function_names["maintenance"]}: missed $disconnects, presence repair"

  schedule_expression = var.maintenance_schedule_expression
  state               = "ENABLED"
  kms_key_arn         = var.kms_key_arn

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = aws_lambda_function.this["maintenance"].arn
    role_arn = aws_iam_role.maintenance_scheduler.arn
    input    = jsonencode({ source = "schedule" })

    # Runs are idempotent and the next one is minutes away: no point retrying an old one.
    retry_policy {
      maximum_retry_attempts       = 0
      maximum_event_age_in_seconds = 60
    }
  }
}
