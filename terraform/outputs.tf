################################################################################
# WebSocket API
################################################################################

output "websocket_api_id" {
  description = "ID of the WebSocket API."
  value       = try(aws_apigatewayv2_api.websocket.id, null)
}

output "websocket_stage_name" {
  description = "Name of the WebSocket API stage."
  value       = try(aws_apigatewayv2_stage.websocket.name, null)
}

output "websocket_url" {
  description = "URL clients connect to, with ?token=<JWT>: wss://<custom_domains.websocket.domain_name> when set, else wss://<api>.execute-api.<region>.amazonaws.com/<stage>; on an emulator (allow_custom_management_endpoint), the websocket_management_endpoint template's ws:// form."
  value       = try(local.client_websocket_url, null)
}

output "websocket_management_endpoint" {
  description = "Base URL of the @connections management API that process-events posts to."
  value       = try(local.websocket_management_endpoint, null)
}

################################################################################
# HTTP API
################################################################################

output "http_api_id" {
  description = "ID of the HTTP API."
  value       = try(aws_apigatewayv2_api.http.id, null)
}

output "http_api_url" {
  description = "Base URL of the HTTP API (GET <url>/events); no trailing slash: https://<custom_domains.http.domain_name> when set, else the stage's invoke URL; on an emulator (allow_custom_management_endpoint), the websocket_management_endpoint template with the HTTP API's id and the $default stage."
  value       = try(local.client_http_api_url, null)
}

################################################################################
# Queues
################################################################################

output "events_queue_url" {
  description = "URL of the events queue producers send to."
  value       = try(aws_sqs_queue.events.url, null)
}

output "events_queue_arn" {
  description = "ARN of the events queue."
  value       = try(aws_sqs_queue.events.arn, null)
}

output "presence_events_queue_arn" {
  description = "ARN of the presence-events queue, the module's own: only its presence functions may send to it (null without presence)."
  value       = try(aws_sqs_queue.presence_events[0].arn, null)
}

output "dlq_url" {
  description = "URL of the dead-letter queue of the events queue."
  value       = try(aws_sqs_queue.dead_letter["events-dlq"].url, null)
}

output "dlq_arn" {
  description = "ARN of the dead-letter queue of the events queue."
  value       = try(aws_sqs_queue.dead_letter["events-dlq"].arn, null)
}

output "publisher_policy_json" {
  description = "IAM policy document (JSON) that lets a producer publish events: sqs:SendMessage on the events queue, plus, when kms_key_arn is set, the KMS data-key permissions SQS needs, usable only through SQS (kms:ViaService). Attach it to your application's role (and list that role in events_queue_publisher_arns to restrict the queue to it)."
  value = try(jsonencode({
    Version = "2012-10-17"
    Statement = concat(
      [{
        Sid      = "PublishEvents"
        Effect   = "Allow"
        Action   = ["sqs:SendMessage"]
        Resource = [aws_sqs_queue.events.arn]
      }],
      var.kms_key_arn == null ? [] : [{
        Sid       = "EncryptEvents"
        Effect    = "Allow"
        Action    = ["kms:GenerateDataKey", "kms:Decrypt"]
        Resource  = [var.kms_key_arn]
        Condition = { StringEquals = { "kms:ViaService" = "sqs.${local.region}.${local.dns_suffix}" } }
      }],
    )
  }), null)
}

################################################################################
# Tables
################################################################################

output "connections_table_name" {
  description = "Name of the connections table."
  value       = try(aws_dynamodb_table.this["connections"].name, null)
}

output "events_table_name" {
  description = "Name of the events table."
  value       = try(aws_dynamodb_table.this["events"].name, null)
}

################################################################################
# Functions and observability
################################################################################

output "function_names" {
  description = "Function names by key (ws-connect, ws-disconnect, process-events, fanout, events-api, maintenance; presence-checks with presence, db-changes with db_changes_sources)."
  value       = try({ for k, f in aws_lambda_function.this : k => f.function_name }, {})
}

output "function_arns" {
  description = "Function ARNs by key."
  value       = try({ for k, f in aws_lambda_function.this : k => f.arn }, {})
}

output "dashboard_name" {
  description = "Name of the CloudWatch dashboard (null when create_dashboard is false)."
  value       = try(aws_cloudwatch_dashboard.this[0].dashboard_name, null)
}

output "log_group_names" {
  description = "Log group names: one per function (by function key), plus websocket-access and http-access."
  value = try(merge(
    { for k, g in aws_cloudwatch_log_group.lambda : k => g.name },
    {
      websocket-access = aws_cloudwatch_log_group.websocket_access.name
      http-access      = aws_cloudwatch_log_group.http_access.name
    },
  ), {})
}

################################################################################
# Presence
################################################################################

output "presence_table_name" {
  description = "Name of the presence table (one item per user). Null when presence_enabled is false."
  value       = try(aws_dynamodb_table.this["presence"].name, null)
}

output "presence_table_arn" {
  description = "ARN of the presence table. Null when presence_enabled is false."
  value       = try(aws_dynamodb_table.this["presence"].arn, null)
}

output "presence_checks_queue_url" {
  description = "URL of the presence-checks delay queue (offline checks, delayed by the grace period). Null when presence_enabled is false."
  value       = try(aws_sqs_queue.presence_checks[0].url, null)
}

output "presence_checks_dlq_url" {
  description = "URL of the dead-letter queue of the presence-checks queue. Null when presence_enabled is false."
  value       = try(aws_sqs_queue.dead_letter["presence-checks-dlq"].url, null)
}

output "presence_grace_period_seconds" {
  description = "The grace period after a user's last session before presence.offline. Null when presence_enabled is false."
  value       = var.presence_enabled ? var.presence_grace_period_seconds : null
}

################################################################################
# Maintenance
################################################################################

output "maintenance_function_name" {
  description = "Name of the maintenance function (invoke it to run maintenance now)."
  value       = try(aws_lambda_function.this["maintenance"].function_name, null)
}

output "maintenance_schedule_name" {
  description = "Name of the EventBridge Scheduler schedule that runs maintenance (default schedule group)."
  value       = try(aws_scheduler_schedule.maintenance.name, null)
}

output "maintenance_schedule_arn" {
  description = "ARN of the maintenance schedule."
  value       = try(aws_scheduler_schedule.maintenance.arn, null)
}

################################################################################
# Database changes
################################################################################

output "db_changes_failures_queue_url" {
  description = "URL of the db-changes on-failure queue: pointers (shard, sequence numbers) to the stream records the mappings gave up on, and to those the rules refused (errorCode and errorReason attributes). Null without db_changes_sources."
  value       = try(aws_sqs_queue.dead_letter["db-changes-failures"].url, null)
}

output "db_changes_failures_queue_arn" {
  description = "ARN of the db-changes on-failure queue. Null without db_changes_sources."
  value       = try(aws_sqs_queue.dead_letter["db-changes-failures"].arn, null)
}

output "db_changes_event_source_mapping_uuids" {
  description = "UUID of each application-table stream's event source mapping, by source name."
  value       = try({ for k, m in aws_lambda_event_source_mapping.db_changes : k => m.uuid }, {})
}

output "db_changes_filter_patterns" {
  description = "The Lambda event filter patterns generated from each source's rules, by source name."
  value       = try(local.db_changes_filter_patterns, {})
}

################################################################################
# Custom domains
################################################################################

output "custom_domain_targets" {
  description = "Where to point the DNS of each custom_domains name: key (websocket, http) => { domain_name, target_domain_name, hosted_zone_id } (a Route 53 alias record, or a CNAME to target_domain_name). Empty without custom_domains."
  value = try({ for k, d in aws_apigatewayv2_domain_name.this : k => {
    domain_name        = d.domain_name
    target_domain_name = d.domain_name_configuration[0].target_domain_name
    hosted_zone_id     = d.domain_name_configuration[0].hosted_zone_id
  } }, {})
}
