################################################################################
# Alarms: on every dead-letter queue, and on the functions and queues the
# features name (local.<feature>_function_error_alarms, local.<feature>_queued_work)
################################################################################

# Each alarm is named "<name>-<key>"; leave out datapoints_to_alarm to alarm on every breaching period.
locals {
  # Function => how long its errors must last before they alarm, and what they mean.
  function_error_alarms = merge(local.events_function_error_alarms, local.fanout_function_error_alarms, local.maintenance_function_error_alarms)

  # Queue => what waits in it; late work there means late delivery.
  queued_work = merge(local.events_queued_work, local.fanout_queued_work, local.presence_queued_work)

  alarms = merge(
    # Any message in a dead-letter queue needs a look.
    { for queue, q in local.dead_letter_queues : q.alarm => {
      description         = "Messages wait in ${aws_sqs_queue.dead_letter[queue].name}. ${q.meaning}"
      namespace           = "AWS/SQS"
      metric_name         = "ApproximateNumberOfMessagesVisible"
      dimensions          = { QueueName = aws_sqs_queue.dead_letter[queue].name }
      statistic           = "Maximum"
      period              = 60
      evaluation_periods  = 1
      comparison_operator = "GreaterThanThreshold"
      threshold           = 0
    } },
    { for function, a in local.function_error_alarms : "${function}-errors" => {
      description         = "The ${function} function failed: ${a.meaning}."
      namespace           = "AWS/Lambda"
      metric_name         = "Errors"
      dimensions          = { FunctionName = aws_lambda_function.this[function].function_name }
      statistic           = "Sum"
      period              = a.period
      evaluation_periods  = a.evaluation_periods
      datapoints_to_alarm = 2
      comparison_operator = "GreaterThanThreshold"
      threshold           = 0
    } },
    # Work waiting too long: events not stored, or pages and retries not posted.
    { for queue, what in local.queued_work : "${queue}-queue-age" => {
      description         = "${what} wait in ${local.queues[queue].name} for more than ${var.events_queue_age_alarm_threshold_seconds} s: delivery is late."
      namespace           = "AWS/SQS"
      metric_name         = "ApproximateAgeOfOldestMessage"
      dimensions          = { QueueName = local.queues[queue].name }
      statistic           = "Maximum"
      period              = 60
      evaluation_periods  = 3
      datapoints_to_alarm = 2
      comparison_operator = "GreaterThanThreshold"
      threshold           = var.events_queue_age_alarm_threshold_seconds
    } },
  )
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

################################################################################
# Dashboard
################################################################################

locals {
  dashboard_functions = [for k in keys(local.functions) : local.function_names[k]]

  # What each maintenance run reports (the function's own metrics, dimension service).
  cleanup_metrics = {
    "stale connections removed"                        = ["DeadConnectionsRemoved"]
    "presence repaired"                                = ["OrphanSessionsRemoved", "OverdueOfflineDecided", "PresenceEventsResent"]
    "expired items TTL has not deleted yet (estimate)" = ["EventsTableExpiredItems", "ConnectionsTableExpiredItems"]
  }

  # Widgets row by row, side by side: a title, the default statistic and the metrics of each.
  dashboard_rows = [
    [
      {
        title = "Events queue"
        stat  = "Sum"
        metrics = [
          ["AWS/SQS", "NumberOfMessagesSent", "QueueName", aws_sqs_queue.events.name],
          [".", "NumberOfMessagesDeleted", ".", "."],
          [".", "ApproximateNumberOfMessagesVisible", ".", ".", { stat = "Maximum" }],
          [".", "ApproximateAgeOfOldestMessage", ".", ".", { stat = "Maximum", yAxis = "right" }],
        ]
      },
      {
        title = "Fan-out queue (pages and retries)"
        stat  = "Sum"
        metrics = [
          ["AWS/SQS", "NumberOfMessagesSent", "QueueName", aws_sqs_queue.fanout.name],
          [".", "NumberOfMessagesDeleted", ".", "."],
          [".", "ApproximateNumberOfMessagesVisible", ".", ".", { stat = "Maximum" }],
          [".", "ApproximateAgeOfOldestMessage", ".", ".", { stat = "Maximum", yAxis = "right" }],
        ]
      },
      {
        title   = "Dead-letter queues"
        stat    = "Maximum"
        metrics = [for q in aws_sqs_queue.dead_letter : ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", q.name]]
      },
    ],
    [
      {
        # The functions' own counts (Powertools metrics: the service dimension is the module's name).
        title = "Delivery (process-events and fanout)"
        stat  = "Sum"
        metrics = [for m in ["Delivered", "DeliveriesRetried", "DeliveriesAbandoned", "DeliveryThrottled", "DeliveryRefused", "ConnectionsGone", "ExpiredConnectionsClosed"] :
        [var.metrics_namespace, m, "service", var.name]]
      },
      {
        title   = "Storage (process-events)"
        stat    = "Sum"
        metrics = [for m in ["EventsStored", "DuplicatesSkipped", "PoisonMessages", "RecordsRetried", "FanoutPagesQueued"] : [var.metrics_namespace, m, "service", var.name]]
      },
    ],
    [for w in [["Lambda errors", "Errors", "Sum"], ["Lambda throttles", "Throttles", "Sum"], ["Lambda duration p95 (ms)", "Duration", "p95"]] : {
      title   = w[0]
      stat    = w[2]
      metrics = [for f in local.dashboard_functions : ["AWS/Lambda", w[1], "FunctionName", f]]
    }],
    [
      {
        title = "WebSocket API"
        stat  = "Sum"
        metrics = [
          ["AWS/ApiGateway", "ConnectCount", "ApiId", aws_apigatewayv2_api.websocket.id, "Stage", var.websocket_stage_name],
          [".", "MessageCount", ".", ".", ".", "."],
          [".", "IntegrationError", ".", ".", ".", "."],
          [".", "ClientError", ".", ".", ".", "."],
          [".", "ExecutionError", ".", ".", ".", "."],
        ]
      },
      {
        title = "HTTP API"
        stat  = "Sum"
        metrics = [
          ["AWS/ApiGateway", "Count", "ApiId", aws_apigatewayv2_api.http.id, "Stage", "$default"],
          [".", "4xx", ".", ".", ".", "."],
          [".", "5xx", ".", ".", ".", "."],
          [".", "Latency", ".", ".", ".", ".", { stat = "p95", yAxis = "right" }],
        ]
      },
    ],
    [for title, names in local.cleanup_metrics : {
      title   = "Cleanup: ${title}"
      stat    = "Maximum"
      metrics = [for n in names : [var.metrics_namespace, n, "service", var.name]]
    }],
  ]

  # Each row 6 high, its widgets sharing the dashboard's 24 columns; all one-minute time series of this region.
  dashboard_widgets = flatten([for y, row in local.dashboard_rows : [for x, w in row : {
    type   = "metric"
    x      = x * 24 / length(row)
    y      = y * 6
    width  = 24 / length(row)
    height = 6
    properties = {
      title   = w.title
      region  = local.region
      stat    = w.stat
      period  = 60
      view    = "timeSeries"
      metrics = w.metrics
    }
  }]])
}

resource "aws_cloudwatch_dashboard" "this" {
  count = var.create_dashboard ? 1 : 0

  dashboard_name = var.name
  dashboard_body = jsonencode({ widgets = local.dashboard_widgets })
}
