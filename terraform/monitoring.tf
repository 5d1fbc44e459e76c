################################################################################
# Alarms: on every dead-letter queue, on the functions and queues the features
# name (local.<feature>_function_error_alarms, local.<feature>_queued_work,
# local.<feature>_concurrency_ceilings), and on saturation: throttles, delivery
# lag, throttled posts, gateway rejections. docs/runbook.md has a section per
# alarm (its `runbook` anchor), linked from each alarm's description.
################################################################################

# Each alarm is named "<name>-<key>"; leave out datapoints_to_alarm to alarm on every breaching period.
locals {
  # Function => how long its errors must last before they alarm, and what they mean.
  function_error_alarms = merge(local.events_function_error_alarms, local.fanout_function_error_alarms, local.maintenance_function_error_alarms)

  # Queue => what waits in it; late work there means late delivery.
  queued_work = merge(local.events_queued_work, local.fanout_queued_work, local.presence_queued_work)

  # Function => the most concurrent executions it gets: its mapping's maximum concurrency, or its reserved concurrency.
  concurrency_ceilings = merge(
    local.events_concurrency_ceilings,
    local.fanout_concurrency_ceilings,
    local.presence_concurrency_ceilings,
    { for k, f in local.functions : k => f.reserved_concurrency if f.reserved_concurrency > 0 },
  )

  saturation = var.saturation_alarm_thresholds

  # Sustained, not a burst: 3 breaching minutes in 5.
  sustained = { period = 60, evaluation_periods = 5, datapoints_to_alarm = 3 }

  # The functions' own metrics (Powertools: the service dimension is the module's name).
  own_metric = { namespace = var.metrics_namespace, dimensions = { service = var.name } }

  websocket_stage = { ApiId = aws_apigatewayv2_api.websocket.id, Stage = var.websocket_stage_name }
  http_stage      = { ApiId = aws_apigatewayv2_api.http.id, Stage = "$default" }

  alarms = merge(
    # Any message in a dead-letter queue needs a look.
    { for queue, q in local.dead_letter_queues : q.alarm => {
      description         = "Messages wait in ${aws_sqs_queue.dead_letter[queue].name}. ${q.meaning}"
      runbook             = q.alarm
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
      runbook             = "${function}-errors"
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
      runbook             = "${queue}-queue-age"
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
    # Lambda refused invocations: the account's (or the function's reserved) concurrency is spent.
    { for function in keys(local.functions) : "${function}-throttles" => merge(local.sustained, {
      description         = "Lambda throttled ${local.function_names[function]}: the account's concurrency (or the function's reserved concurrency) is spent, and its callers wait or fail."
      runbook             = "function-throttles"
      namespace           = "AWS/Lambda"
      metric_name         = "Throttles"
      dimensions          = { FunctionName = aws_lambda_function.this[function].function_name }
      statistic           = "Sum"
      comparison_operator = "GreaterThanThreshold"
      threshold           = 0
    }) },
    # Near its ceiling a function's work queues up: the step before lag and throttles.
    { for function, ceiling in local.concurrency_ceilings : "${function}-concurrency" => merge(local.sustained, {
      description         = "${local.function_names[function]} runs at ${local.saturation.concurrency_percent}% or more of its ${ceiling} concurrent executions: its work waits."
      runbook             = "function-concurrency"
      namespace           = "AWS/Lambda"
      metric_name         = "ConcurrentExecutions"
      dimensions          = { FunctionName = aws_lambda_function.this[function].function_name }
      statistic           = "Maximum"
      comparison_operator = "GreaterThanOrEqualToThreshold"
      threshold           = max(1, ceil(ceiling * local.saturation.concurrency_percent / 100))
    }) },
    {
      "lambda-account-concurrency" = merge(local.sustained, {
        description         = "The account's claimed Lambda concurrency in this Region is at ${local.saturation.concurrency_percent}% or more of ${local.saturation.lambda_concurrency_quota}: every function (this module's and others) is close to being throttled."
        runbook             = "lambda-account-concurrency"
        namespace           = "AWS/Lambda"
        metric_name         = "ClaimedAccountConcurrency"
        dimensions          = {}
        statistic           = "Maximum"
        comparison_operator = "GreaterThanOrEqualToThreshold"
        threshold           = ceil(local.saturation.lambda_concurrency_quota * local.saturation.concurrency_percent / 100)
      })

      # publishedAt to the first posts (inline or by page), one value per batch or page job.
      "delivery-lag" = merge(local.sustained, local.own_metric, {
        description         = "Events reach their connections more than ${local.saturation.delivery_lag_seconds} s after they were stored (p90 of DeliveryLag)."
        runbook             = "delivery-lag"
        metric_name         = "DeliveryLag"
        extended_statistic  = "p90"
        comparison_operator = "GreaterThanThreshold"
        threshold           = local.saturation.delivery_lag_seconds * 1000
      })

      # @connections answered 429: the posts are retried with backoff, but late.
      "delivery-throttled" = merge(local.sustained, {
        description         = "More than ${local.saturation.throttled_posts_percent}% of the posts to connections were throttled (429): the account's API Gateway request rate is spent."
        runbook             = "delivery-throttled"
        comparison_operator = "GreaterThanThreshold"
        threshold           = local.saturation.throttled_posts_percent
        queries = {
          throttled = { metric = merge(local.own_metric, { metric_name = "DeliveryThrottled", stat = "Sum" }) }
          delivered = { metric = merge(local.own_metric, { metric_name = "Delivered", stat = "Sum" }) }
          share     = { expression = "IF(FILL(delivered, 0) + FILL(throttled, 0) > 0, 100 * FILL(throttled, 0) / (FILL(delivered, 0) + FILL(throttled, 0)), 0)", label = "Throttled posts (%)" }
        }
      })

      # 4XX from the gateway before any function: on this API that is its stage and route throttles.
      "websocket-rejections" = merge(local.sustained, {
        description         = "The WebSocket API rejects more than ${local.saturation.websocket_rejections_per_minute} requests a minute itself (ClientError: its throttles): clients cannot connect or ping."
        runbook             = "websocket-rejections"
        namespace           = "AWS/ApiGateway"
        metric_name         = "ClientError"
        dimensions          = local.websocket_stage
        statistic           = "Sum"
        comparison_operator = "GreaterThanThreshold"
        threshold           = local.saturation.websocket_rejections_per_minute
      })

      # Counted from 60 requests a minute: below, a few 401s of expired tokens would make a large share.
      "http-client-errors" = merge(local.sustained, {
        description         = "More than ${local.saturation.http_client_errors_percent}% of the HTTP API's requests got a 4xx (429 throttles, or 400/401 from events-api)."
        runbook             = "http-client-errors"
        comparison_operator = "GreaterThanThreshold"
        threshold           = local.saturation.http_client_errors_percent
        queries = {
          errors   = { metric = { namespace = "AWS/ApiGateway", metric_name = "4xx", dimensions = local.http_stage, stat = "Sum" } }
          requests = { metric = { namespace = "AWS/ApiGateway", metric_name = "Count", dimensions = local.http_stage, stat = "Sum" } }
          share    = { expression = "IF(FILL(requests, 0) >= 60, 100 * FILL(errors, 0) / FILL(requests, 0), 0)", label = "4xx (%)" }
        }
      })
    },
  )
}

resource "aws_cloudwatch_metric_alarm" "this" {
  for_each = { for k, a in local.alarms : k => a if var.create_alarms }

  alarm_name        = "${var.name}-${each.key}"
  alarm_description = "${each.value.description} Runbook: docs/runbook.md#${each.value.runbook}"

  # A single metric, or metric math over `queries` (the query named in neither is the alarm's value).
  namespace           = try(each.value.namespace, null)
  metric_name         = try(each.value.metric_name, null)
  dimensions          = try(each.value.dimensions, null)
  statistic           = try(each.value.statistic, null)
  extended_statistic  = try(each.value.extended_statistic, null)
  period              = try(each.value.queries, null) == null ? each.value.period : null
  evaluation_periods  = each.value.evaluation_periods
  datapoints_to_alarm = try(each.value.datapoints_to_alarm, null)
  comparison_operator = each.value.comparison_operator
  threshold           = each.value.threshold
  treat_missing_data  = "notBreaching"

  dynamic "metric_query" {
    for_each = try(each.value.queries, {})

    content {
      id          = metric_query.key
      expression  = try(metric_query.value.expression, null)
      label       = try(metric_query.value.label, null)
      return_data = try(metric_query.value.expression, null) != null

      dynamic "metric" {
        for_each = try([metric_query.value.metric], [])

        content {
          namespace   = metric.value.namespace
          metric_name = metric.value.metric_name
          dimensions  = metric.value.dimensions
          stat        = metric.value.stat
          period      = each.value.period
        }
      }
    }
  }

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
    # Saturation: what the saturation alarms watch (docs/runbook.md).
    [
      {
        title = "Delivery lag, publishedAt to first posts (ms)"
        stat  = "p90"
        metrics = [for stat in ["p50", "p90", "Maximum"] :
        [var.metrics_namespace, "DeliveryLag", "service", var.name, { stat = stat, label = "DeliveryLag ${stat}" }]]
      },
      {
        title = "Throttled: posts, WebSocket and HTTP requests"
        stat  = "Sum"
        metrics = [
          [var.metrics_namespace, "DeliveryThrottled", "service", var.name],
          ["AWS/ApiGateway", "ClientError", "ApiId", aws_apigatewayv2_api.websocket.id, "Stage", var.websocket_stage_name],
          ["AWS/ApiGateway", "4xx", "ApiId", aws_apigatewayv2_api.http.id, "Stage", "$default"],
        ]
      },
      {
        title = "Lambda concurrency (max)"
        stat  = "Maximum"
        metrics = concat(
          [for f in local.dashboard_functions : ["AWS/Lambda", "ConcurrentExecutions", "FunctionName", f]],
          [["AWS/Lambda", "ClaimedAccountConcurrency", { yAxis = "right", label = "account (claimed)" }]],
        )
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
