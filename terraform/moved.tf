# Where resources of earlier versions of the module went: these blocks keep the
# deployed objects in place (no replacement) when an address changed. Adding
# `count` to a resource (presence_checks) needs none: Terraform moves the object
# to instance [0] by itself, and neither does moving a resource to another file
# (the split by feature kept every address). make test-upgrade checks that a
# deployment of an earlier version plans with nothing replaced.

moved {
  from = aws_dynamodb_table.connections
  to   = aws_dynamodb_table.this["connections"]
}

moved {
  from = aws_dynamodb_table.events
  to   = aws_dynamodb_table.this["events"]
}

moved {
  from = aws_dynamodb_table.presence
  to   = aws_dynamodb_table.this["presence"]
}

moved {
  from = aws_sqs_queue.dlq
  to   = aws_sqs_queue.dead_letter["events-dlq"]
}

moved {
  from = aws_sqs_queue.presence_checks_dlq
  to   = aws_sqs_queue.dead_letter["presence-checks-dlq"]
}

moved {
  from = aws_sqs_queue.db_changes_failures[0]
  to   = aws_sqs_queue.dead_letter["db-changes-failures"]
}

moved {
  from = aws_sqs_queue_redrive_allow_policy.dlq
  to   = aws_sqs_queue_redrive_allow_policy.this["events-dlq"]
}

moved {
  from = aws_sqs_queue_redrive_allow_policy.presence_checks_dlq
  to   = aws_sqs_queue_redrive_allow_policy.this["presence-checks-dlq"]
}

moved {
  from = aws_sqs_queue_policy.events
  to   = aws_sqs_queue_policy.this["events"]
}

moved {
  from = aws_sqs_queue_policy.dlq
  to   = aws_sqs_queue_policy.this["events-dlq"]
}

moved {
  from = aws_sqs_queue_policy.presence_checks["presence-checks"]
  to   = aws_sqs_queue_policy.this["presence-checks"]
}

moved {
  from = aws_sqs_queue_policy.presence_checks["presence-checks-dlq"]
  to   = aws_sqs_queue_policy.this["presence-checks-dlq"]
}

moved {
  from = aws_sqs_queue_policy.db_changes_failures[0]
  to   = aws_sqs_queue_policy.this["db-changes-failures"]
}

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

moved {
  from = aws_lambda_event_source_mapping.process_events
  to   = aws_lambda_event_source_mapping.process_events["events"]
}

# 0.3: the gateway answers ping as well as $default (websocket.tf, gateway_answer).
moved {
  from = aws_apigatewayv2_integration.unknown_action
  to   = aws_apigatewayv2_integration.gateway_answer["$default"]
}

moved {
  from = aws_apigatewayv2_integration_response.unknown_action
  to   = aws_apigatewayv2_integration_response.gateway_answer["$default"]
}
