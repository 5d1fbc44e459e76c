output "region" {
  description = "Region of the stack (the provider's)."
  value       = data.aws_region.current.name
}

output "endpoint" {
  description = "Emulator endpoint (AWS_ENDPOINT_URL for clients and tests)."
  value       = var.endpoint
}

output "websocket_url" {
  description = "WebSocket URL clients connect to (add ?token=<JWT>): on ministack ws://host:port/_aws/execute-api/<api id>/<stage>."
  value       = module.realtime.websocket_url
}

output "websocket_management_endpoint" {
  description = "@connections endpoint on the emulator."
  value       = module.realtime.websocket_management_endpoint
}

output "http_api_url" {
  description = "HTTP API base URL (GET <url>/events): on ministack http://host:port/_aws/execute-api/<api id>/$default."
  value       = module.realtime.http_api_url
}

output "websocket_api_id" {
  description = "ID of the WebSocket API."
  value       = module.realtime.websocket_api_id
}

output "http_api_id" {
  description = "ID of the HTTP API."
  value       = module.realtime.http_api_id
}

output "token_secret_ssm_parameter" {
  description = "SSM SecureString parameter holding the dev HS256 secret."
  value       = aws_ssm_parameter.token_secret.name
}

output "events_queue_url" {
  description = "URL of the events queue."
  value       = module.realtime.events_queue_url
}

output "events_queue_arn" {
  description = "ARN of the events queue."
  value       = module.realtime.events_queue_arn
}

output "dlq_url" {
  description = "URL of the dead-letter queue."
  value       = module.realtime.dlq_url
}

output "connections_table_name" {
  description = "Name of the connections table."
  value       = module.realtime.connections_table_name
}

output "events_table_name" {
  description = "Name of the events table."
  value       = module.realtime.events_table_name
}

output "function_names" {
  description = "Function names by key."
  value       = module.realtime.function_names
}

output "log_group_names" {
  description = "Log group names by key."
  value       = module.realtime.log_group_names
}

output "publisher_policy_json" {
  description = "IAM policy a producer needs (not enforced by the emulator)."
  value       = module.realtime.publisher_policy_json
}

output "clinic_table_name" {
  description = "The example application table (doctors and their patients) whose changes become events."
  value       = aws_dynamodb_table.clinic.name
}

output "clinic_table_stream_arn" {
  description = "Stream of the clinic table, read by db-changes."
  value       = aws_dynamodb_table.clinic.stream_arn
}

output "db_changes_failures_queue_url" {
  description = "On-failure queue of the clinic stream mapping."
  value       = module.realtime.db_changes_failures_queue_url
}

output "presence_table_name" {
  description = "Name of the presence table."
  value       = module.realtime.presence_table_name
}

output "presence_checks_queue_url" {
  description = "URL of the presence-checks delay queue."
  value       = module.realtime.presence_checks_queue_url
}

output "presence_grace_period_seconds" {
  description = "Grace period before presence.offline."
  value       = module.realtime.presence_grace_period_seconds
}

output "maintenance_function_name" {
  description = "Name of the maintenance function (the emulator's scheduler ticks about once a minute; invoke it directly to repair now)."
  value       = module.realtime.maintenance_function_name
}

output "maintenance_schedule_name" {
  description = "Name of the EventBridge Scheduler schedule that runs maintenance."
  value       = module.realtime.maintenance_schedule_name
}

output "demo_port" {
  description = "Port of the demo page whose origin the HTTP API allows."
  value       = var.demo_port
}
