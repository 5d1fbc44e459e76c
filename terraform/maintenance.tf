################################################################################
# maintenance: runs on an EventBridge Scheduler schedule to remove connections
# whose $disconnect was missed (API Gateway sends it best-effort) and, with
# presence, to repair presence. Each run scans at most
# maintenance_scan_items_per_run items of each table, from where the previous
# run stopped (positions saved in the connections table): a run costs the same
# whatever the tables' size, and a full pass takes ceil(items / that) runs.
################################################################################

locals {
  maintenance_timeout = 300 # a run stops starting work 10 s before and saves its scans' positions; the next run carries on from there

  maintenance_functions = {
    "maintenance" = {
      description = "Scheduled: removes connections whose $disconnect was missed and repairs presence"
      handler     = "realtime.handlers.maintenance.handler"
      timeout     = local.maintenance_timeout
      environment = {
        CONNECTIONS_TABLE            = aws_dynamodb_table.this["connections"].name
        EVENTS_TABLE                 = aws_dynamodb_table.this["events"].name
        CONNECTIONS_ENDPOINT         = local.websocket_management_endpoint
        STALE_CONNECTION_SECONDS     = tostring(var.stale_connection_threshold_seconds)
        MAINTENANCE_SCAN_ITEMS       = tostring(var.maintenance_scan_items_per_run)
        CONNECTION_CHECKS_PER_SECOND = tostring(var.maintenance_connection_checks_per_second)
      }
      sections = { presence = local.presence_environment.repairing_presence }
      statements = concat(
        [
          {
            # Scan for stale connection records; GetItem/DeleteItem/BatchWriteItem to remove a dead
            # connection and its subscriptions; DescribeTable and a sampling Scan for expired records;
            # GetItem/UpdateItem of the scans' saved positions (pk maintenance#<scan>).
            sid       = "ConnectionsTable"
            actions   = distinct(concat(["dynamodb:Scan", "dynamodb:GetItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem", "dynamodb:DescribeTable", "dynamodb:UpdateItem"], local.session_count_actions))
            resources = [aws_dynamodb_table.this["connections"].arn]
          },
          {
            # DescribeTable and one sampling Scan page per run: events past retention that TTL has not deleted.
            sid       = "SampleEventsTable"
            actions   = ["dynamodb:Scan", "dynamodb:DescribeTable"]
            resources = [aws_dynamodb_table.this["events"].arn]
          },
          {
            # GetConnection is GET @connections/{id}; a connection whose token expired gets a last frame
            # (POST) and is closed (DELETE).
            sid     = "ManageConnections"
            actions = ["execute-api:ManageConnections"]
            resources = [for method in ["GET", "POST", "DELETE"] :
              "${aws_apigatewayv2_api.websocket.execution_arn}/${var.websocket_stage_name}/${method}/@connections/*"
            ]
          },
        ],
        local.presence_statements["maintenance"],
      )
    }
  }

  maintenance_function_error_alarms = {
    "maintenance" = { period = 300, evaluation_periods = 3, meaning = "missed $disconnects are not being repaired" }
  }
}

################################################################################
# Schedule, and the role it invokes maintenance with
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
