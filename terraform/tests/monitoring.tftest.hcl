# Saturation alarms and dashboard: Lambda throttles and concurrency near its
# ceilings, delivery lag, throttled posts, the gateways' rejections; each alarm
# points to its section of docs/runbook.md and honours create_alarms.

# Mocks and inputs shared by every test file: tests/mocks/aws.tfmock.hcl, tests/terraform.tfvars.
mock_provider "aws" {
  source = "./tests/mocks"
}

run "every_function_alarms_on_its_throttles" {
  command = apply

  assert {
    condition = alltrue([for k, f in aws_lambda_function.this :
      aws_cloudwatch_metric_alarm.this["${k}-throttles"].namespace == "AWS/Lambda" &&
      aws_cloudwatch_metric_alarm.this["${k}-throttles"].metric_name == "Throttles" &&
      aws_cloudwatch_metric_alarm.this["${k}-throttles"].dimensions == tomap({ FunctionName = f.function_name }) &&
      aws_cloudwatch_metric_alarm.this["${k}-throttles"].statistic == "Sum" &&
      aws_cloudwatch_metric_alarm.this["${k}-throttles"].threshold == 0
    ])
    error_message = "Each function's Throttles (AWS/Lambda, by FunctionName) raise its alarm."
  }

  assert {
    condition = alltrue([for k, _ in aws_lambda_function.this :
      aws_cloudwatch_metric_alarm.this["${k}-throttles"].evaluation_periods == 5 && aws_cloudwatch_metric_alarm.this["${k}-throttles"].datapoints_to_alarm == 3
    ])
    error_message = "Throttles alarm when they last: 3 minutes in 5, not on one burst."
  }
}

run "concurrency_is_alarmed_against_each_ceiling" {
  command = apply

  variables {
    fanout_maximum_concurrency      = 50
    events_api_reserved_concurrency = 200
  }

  assert {
    condition = {
      for k in ["process-events", "fanout", "presence-checks", "events-api"] : k => [
        aws_cloudwatch_metric_alarm.this["${k}-concurrency"].namespace,
        aws_cloudwatch_metric_alarm.this["${k}-concurrency"].metric_name,
        aws_cloudwatch_metric_alarm.this["${k}-concurrency"].statistic,
        aws_cloudwatch_metric_alarm.this["${k}-concurrency"].dimensions.FunctionName,
        aws_cloudwatch_metric_alarm.this["${k}-concurrency"].comparison_operator,
        tostring(aws_cloudwatch_metric_alarm.this["${k}-concurrency"].threshold),
      ]
      } == {
      "process-events"  = ["AWS/Lambda", "ConcurrentExecutions", "Maximum", "rt-test-process-events", "GreaterThanOrEqualToThreshold", "8"]
      "fanout"          = ["AWS/Lambda", "ConcurrentExecutions", "Maximum", "rt-test-fanout", "GreaterThanOrEqualToThreshold", "40"]
      "presence-checks" = ["AWS/Lambda", "ConcurrentExecutions", "Maximum", "rt-test-presence-checks", "GreaterThanOrEqualToThreshold", "4"]
      "events-api"      = ["AWS/Lambda", "ConcurrentExecutions", "Maximum", "rt-test-events-api", "GreaterThanOrEqualToThreshold", "160"]
    }
    error_message = "Each bounded function alarms at 80% of its ceiling: the mappings' maximum concurrency, events-api's reserved concurrency."
  }

  assert {
    condition = (
      aws_cloudwatch_metric_alarm.this["lambda-account-concurrency"].namespace == "AWS/Lambda" &&
      aws_cloudwatch_metric_alarm.this["lambda-account-concurrency"].metric_name == "ClaimedAccountConcurrency" &&
      length(aws_cloudwatch_metric_alarm.this["lambda-account-concurrency"].dimensions) == 0 &&
      aws_cloudwatch_metric_alarm.this["lambda-account-concurrency"].threshold == 800
    )
    error_message = "The account's claimed concurrency alarms at 80% of the default quota of 1,000."
  }
}

run "without_reserved_concurrency_events_api_has_no_ceiling_to_watch" {
  command = plan

  assert {
    condition     = !contains(keys(aws_cloudwatch_metric_alarm.this), "events-api-concurrency") && contains(keys(aws_cloudwatch_metric_alarm.this), "events-api-throttles")
    error_message = "Unreserved, events-api shares the account's concurrency: its throttles are alarmed, not a ceiling of its own."
  }
}

run "delivery_lag_and_throttled_posts_are_alarmed_from_the_functions_metrics" {
  command = apply

  assert {
    condition = (
      aws_cloudwatch_metric_alarm.this["delivery-lag"].namespace == "RealtimeEvents" &&
      aws_cloudwatch_metric_alarm.this["delivery-lag"].metric_name == "DeliveryLag" &&
      aws_cloudwatch_metric_alarm.this["delivery-lag"].dimensions == tomap({ service = "rt-test" }) &&
      aws_cloudwatch_metric_alarm.this["delivery-lag"].extended_statistic == "p90" &&
      aws_cloudwatch_metric_alarm.this["delivery-lag"].statistic == null &&
      aws_cloudwatch_metric_alarm.this["delivery-lag"].threshold == 30000
    )
    error_message = "Delivery lag alarms on the p90 of the functions' DeliveryLag (ms) above 30 s."
  }

  assert {
    condition = (
      aws_cloudwatch_metric_alarm.this["delivery-throttled"].metric_name == null &&
      aws_cloudwatch_metric_alarm.this["delivery-throttled"].threshold == 5 &&
      toset([for q in aws_cloudwatch_metric_alarm.this["delivery-throttled"].metric_query : q.metric[0].metric_name if length(q.metric) > 0]) == toset(["DeliveryThrottled", "Delivered"]) &&
      alltrue([for q in aws_cloudwatch_metric_alarm.this["delivery-throttled"].metric_query : q.metric[0].namespace == "RealtimeEvents" && q.metric[0].dimensions == tomap({ service = "rt-test" }) if length(q.metric) > 0]) &&
      [for q in aws_cloudwatch_metric_alarm.this["delivery-throttled"].metric_query : q.id if q.return_data] == ["share"]
    )
    error_message = "Throttled posts alarm on their share of the posts (DeliveryThrottled against Delivered), above 5%."
  }
}

run "gateway_rejections_are_alarmed_on_both_apis" {
  command = apply

  assert {
    condition = (
      aws_cloudwatch_metric_alarm.this["websocket-rejections"].namespace == "AWS/ApiGateway" &&
      aws_cloudwatch_metric_alarm.this["websocket-rejections"].metric_name == "ClientError" &&
      aws_cloudwatch_metric_alarm.this["websocket-rejections"].dimensions == tomap({ ApiId = aws_apigatewayv2_api.websocket.id, Stage = "live" }) &&
      aws_cloudwatch_metric_alarm.this["websocket-rejections"].threshold == 60
    )
    error_message = "The WebSocket stage's ClientError (the gateway's own 4XX: its throttles) is alarmed."
  }

  assert {
    condition = (
      toset([for q in aws_cloudwatch_metric_alarm.this["http-client-errors"].metric_query : q.metric[0].metric_name if length(q.metric) > 0]) == toset(["4xx", "Count"]) &&
      alltrue([for q in aws_cloudwatch_metric_alarm.this["http-client-errors"].metric_query : q.metric[0].namespace == "AWS/ApiGateway" && q.metric[0].dimensions == tomap({ ApiId = aws_apigatewayv2_api.http.id, Stage = "$default" }) if length(q.metric) > 0]) &&
      aws_cloudwatch_metric_alarm.this["http-client-errors"].threshold == 10
    )
    error_message = "The HTTP API's 4xx share of its requests is alarmed."
  }
}

run "thresholds_are_inputs" {
  command = plan

  variables {
    saturation_alarm_thresholds = {
      delivery_lag_seconds            = 5
      throttled_posts_percent         = 1
      websocket_rejections_per_minute = 600
      http_client_errors_percent      = 25
      concurrency_percent             = 50
      lambda_concurrency_quota        = 3000
    }
  }

  assert {
    condition = (
      aws_cloudwatch_metric_alarm.this["delivery-lag"].threshold == 5000 &&
      aws_cloudwatch_metric_alarm.this["delivery-throttled"].threshold == 1 &&
      aws_cloudwatch_metric_alarm.this["websocket-rejections"].threshold == 600 &&
      aws_cloudwatch_metric_alarm.this["http-client-errors"].threshold == 25 &&
      aws_cloudwatch_metric_alarm.this["fanout-concurrency"].threshold == 10 &&
      aws_cloudwatch_metric_alarm.this["lambda-account-concurrency"].threshold == 1500
    )
    error_message = "Each saturation threshold follows saturation_alarm_thresholds."
  }
}

run "refuses_a_percentage_over_100" {
  command = plan

  variables {
    saturation_alarm_thresholds = { concurrency_percent = 120 }
  }

  expect_failures = [var.saturation_alarm_thresholds]
}

run "every_alarm_links_its_runbook_section_and_notifies_alarm_actions" {
  command = apply

  variables {
    alarm_actions = ["arn:aws:sns:us-east-1:123456789012:ops"]
    ok_actions    = ["arn:aws:sns:us-east-1:123456789012:ops"]
    tags          = { Team = "platform" }
  }

  assert {
    condition = alltrue([for a in aws_cloudwatch_metric_alarm.this :
      can(regex(" Runbook: docs/runbook.md#[a-z-]+$", a.alarm_description)) && length(a.alarm_description) <= 1024
    ])
    error_message = "Every alarm's description ends with its runbook section, within CloudWatch's 1024 characters."
  }

  assert {
    condition = alltrue([for a in aws_cloudwatch_metric_alarm.this :
      strcontains(file("${path.module}/../docs/runbook.md"), "<a id=\"${regex("#([a-z-]+)$", a.alarm_description)[0]}\"></a>")
    ])
    error_message = "Every alarm's runbook section exists in docs/runbook.md."
  }

  assert {
    condition = alltrue([for a in aws_cloudwatch_metric_alarm.this :
      a.alarm_actions == toset(["arn:aws:sns:us-east-1:123456789012:ops"]) && a.ok_actions == toset(["arn:aws:sns:us-east-1:123456789012:ops"]) &&
      a.tags == tomap({ Team = "platform", Name = a.alarm_name }) && a.treat_missing_data == "notBreaching"
    ])
    error_message = "The saturation alarms notify and are tagged like the others."
  }
}

run "no_alarms_without_create_alarms" {
  command = plan

  variables {
    create_alarms                   = false
    events_api_reserved_concurrency = 200
  }

  assert {
    condition     = length(aws_cloudwatch_metric_alarm.this) == 0
    error_message = "create_alarms = false leaves out every alarm, the saturation ones too."
  }
}

run "the_dashboard_shows_saturation" {
  command = apply

  assert {
    condition = alltrue([for m in [
      ["RealtimeEvents", "DeliveryLag", "service", "rt-test", { stat = "p90", label = "DeliveryLag p90" }],
      ["RealtimeEvents", "DeliveryThrottled", "service", "rt-test"],
      ["AWS/ApiGateway", "ClientError", "ApiId", aws_apigatewayv2_api.websocket.id, "Stage", "live"],
      ["AWS/Lambda", "ConcurrentExecutions", "FunctionName", "rt-test-fanout"],
      ["AWS/Lambda", "ClaimedAccountConcurrency", { yAxis = "right", label = "account (claimed)" }],
      ] : contains(flatten([for w in jsondecode(aws_cloudwatch_dashboard.this[0].dashboard_body).widgets : [
        for metric in w.properties.metrics : jsonencode(metric)
    ]]), jsonencode(m))])
    error_message = "The dashboard graphs delivery lag, throttled posts, the gateway's rejections and concurrency."
  }
}
