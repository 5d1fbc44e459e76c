output "websocket_url" {
  description = "wss:// URL clients connect to (add ?token=<JWT>)."
  value       = module.realtime.websocket_url
}

output "http_api_url" {
  description = "HTTPS base URL of the events API (GET <url>/events)."
  value       = module.realtime.http_api_url
}

output "events_queue_url" {
  description = "URL of the queue producers send events to."
  value       = module.realtime.events_queue_url
}

output "publisher_policy_json" {
  description = "IAM policy to attach to the producers' role."
  value       = module.realtime.publisher_policy_json
}

output "clinic_table_name" {
  description = "The application table whose changes become events."
  value       = aws_dynamodb_table.clinic.name
}

output "db_changes_failures_queue_url" {
  description = "Where the stream mapping leaves pointers to the changes it could not turn into events (alarmed)."
  value       = module.realtime.db_changes_failures_queue_url
}

output "db_changes_filter_patterns" {
  description = "Lambda event filters generated from the rules."
  value       = module.realtime.db_changes_filter_patterns
}

output "kms_key_arn" {
  description = "The stack's customer managed key."
  value       = aws_kms_key.this.arn
}

output "dashboard_name" {
  description = "CloudWatch dashboard of the stack."
  value       = module.realtime.dashboard_name
}
