################################################################################
# Alarms
################################################################################

# Feature files (presence.tf, db_changes.tf) add their alarms the same way as
# their functions (see main.tf). Each alarm is named "<name>-<key>"; leave out
# datapoints_to_alarm to alarm on every breaching period.
locals {
  core_alarms = {
    "events-dlq-not-empty" = {
      description         = "Events could not be processed and are waiting in ${aws_sqs_queue.dlq.name} (see their errorCode/errorReason attributes)."
      namespace           = "AWS/SQS"
      metric_name         = "ApproximateNumberOfMessagesVisible"
      dimensions          = { QueueName = aws_sqs_queue.dlq.name }
      statistic           = "Maximum"
      period              = 60
      evaluation_periods  = 1
      comparison_operator = "GreaterThanThreshold"
      threshold           = 0
    }
    "process-events-errors" = {
      description         = "The process-events function failed (its batches are retried, then redriven to the DLQ)."
      namespace           = "AWS/Lambda"
      metric_name         = "Errors"
      dimensions          = { FunctionName = aws_lambda_function.this["process-events"].function_name }
      statistic           = "Sum"
      period              = 60
      evaluation_periods  = 5
      datapoints_to_alarm = 2
      comparison_operator = "GreaterThanThreshold"
      threshold           = 0
    }
    "events-queue-age" = {
      description         = "Events wait in ${aws_sqs_queue.events.name} for more than ${var.events_queue_age_alarm_threshold_seconds} s: delivery is late."
      namespace           = "AWS/SQS"
      metric_name         = "ApproximateAgeOfOldestMessage"
      dimensions          = { QueueName = aws_sqs_queue.events.name }
      statistic           = "Maximum"
      period              = 60
      evaluation_periods  = 3
      datapoints_to_alarm = 2
      comparison_operator = "GreaterThanThreshold"
      threshold           = var.events_queue_age_alarm_threshold_seconds
    }
  }

  alarms = merge(local.core_alarms, local.presence_alarms, local.db_changes_alarms)
}

resource "aws_cloudwatch_metric_alarm" "this" {
  for_each = { for k, a in local.alarms : k => a if var.create_alarms }

  alarm_name        = "${var.name}-${each.key}"
  alarm_description = each.value.description

  namespace           = each.value.namespace
  metric_name         = each.value.metric_name
  dimensions          = each.value.dimensions
  statistic           = each.value.statistic
  period              = each.value.period
  evaluation_periods  = each.value.evaluation_periods
  datapoints_to_alarm = try(each.value.datapoints_to_alarm, null)
  comparison_operator = each.value.comparison_operator
  threshold           = each.value.threshold
  treat_missing_data  = "notBreaching"

  actions_enabled = true
  alarm_actions   = var.alarm_actions
  ok_actions      = var.ok_actions

  tags = merge(var.tags, { Name = "${var.name}-${each.key}" })
}

# The alarms were separate resources before; keep the deployed ones.
moved {
  from = aws_cloudwatch_metric_alarm.dlq_not_empty[0]
  to   = aws_cloudwatch_metric_alarm.this["events-dlq-not-empty"]
}

moved {
  from = aws_cloudwatch_metric_alarm.process_events_errors[0]
  to   = aws_cloudwatch_metric_alarm.this["process-events-errors"]
}

moved {
  from = aws_cloudwatch_metric_alarm.events_queue_age[0]
  to   = aws_cloudwatch_metric_alarm.this["events-queue-age"]
}

moved {
  from = aws_cloudwatch_metric_alarm.presence_checks_dlq_not_empty[0]
  to   = aws_cloudwatch_metric_alarm.this["presence-checks-dlq-not-empty"]
}

moved {
  from = aws_cloudwatch_metric_alarm.maintenance_errors[0]
  to   = aws_cloudwatch_metric_alarm.this["maintenance-errors"]
}

moved {
  from = aws_cloudwatch_metric_alarm.db_changes_failures[0]
  to   = aws_cloudwatch_metric_alarm.this["db-changes-failures"]
}

################################################################################
# Dashboard
################################################################################

locals {
  dashboard_functions = [for k in keys(local.functions) : local.function_names[k]]

  dashboard_widgets = [
    {
      type = "metric", x = 0, y = 0, width = 12, height = 6
      properties = {
        title  = "Events queue"
        region = local.region
        stat   = "Sum"
        period = 60
        view   = "timeSeries"
        metrics = [
          ["AWS/SQS", "NumberOfMessagesSent", "QueueName", aws_sqs_queue.events.name],
          [".", "NumberOfMessagesDeleted", ".", "."],
          [".", "ApproximateNumberOfMessagesVisible", ".", ".", { stat = "Maximum" }],
          [".", "ApproximateAgeOfOldestMessage", ".", ".", { stat = "Maximum", yAxis = "right" }],
        ]
      }
    },
    {
      type = "metric", x = 12, y = 0, width = 12, height = 6
      properties = {
        title   = "Dead-letter queue"
        region  = local.region
        stat    = "Maximum"
        period  = 60
        view    = "timeSeries"
        metrics = [["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", aws_sqs_queue.dlq.name]]
      }
    },
    {
      type = "metric", x = 0, y = 6, width = 8, height = 6
      properties = {
        title   = "Lambda errors"
        region  = local.region
        stat    = "Sum"
        period  = 60
        view    = "timeSeries"
        metrics = [for f in local.dashboard_functions : ["AWS/Lambda", "Errors", "FunctionName", f]]
      }
    },
    {
      type = "metric", x = 8, y = 6, width = 8, height = 6
      properties = {
        title   = "Lambda throttles"
        region  = local.region
        stat    = "Sum"
        period  = 60
        view    = "timeSeries"
        metrics = [for f in local.dashboard_functions : ["AWS/Lambda", "Throttles", "FunctionName", f]]
      }
    },
    {
      type = "metric", x = 16, y = 6, width = 8, height = 6
      properties = {
        title   = "Lambda duration p95 (ms)"
        region  = local.region
        stat    = "p95"
        period  = 60
        view    = "timeSeries"
        metrics = [for f in local.dashboard_functions : ["AWS/Lambda", "Duration", "FunctionName", f]]
      }
    },
    {
      type = "metric", x = 0, y = 12, width = 12, height = 6
      properties = {
        title  = "WebSocket API"
        region = local.region
        stat   = "Sum"
        period = 60
        view   = "timeSeries"
        metrics = [
          ["AWS/ApiGateway", "ConnectCount", "ApiId", aws_apigatewayv2_api.websocket.id, "Stage", var.websocket_stage_name],
          [".", "MessageCount", ".", ".", ".", "."],
          [".", "IntegrationError", ".", ".", ".", "."],
          [".", "ClientError", ".", ".", ".", "."],
          [".", "ExecutionError", ".", ".", ".", "."],
        ]
      }
    },
    {
      type = "metric", x = 12, y = 12, width = 12, height = 6
      properties = {
        title  = "HTTP API"
        region = local.region
        stat   = "Sum"
        period = 60
        view   = "timeSeries"
        metrics = [
          ["AWS/ApiGateway", "Count", "ApiId", aws_apigatewayv2_api.http.id, "Stage", "$default"],
          [".", "4xx", ".", ".", ".", "."],
          [".", "5xx", ".", ".", ".", "."],
          [".", "Latency", ".", ".", ".", ".", { stat = "p95", yAxis = "right" }],
        ]
      }
    },
  ]
}

resource "aws_cloudwatch_dashboard" "this" {
  count = var.create_dashboard ? 1 : 0

  dashboard_name = var.name
  dashboard_body = jsonencode({ widgets = local.dashboard_widgets })
}
