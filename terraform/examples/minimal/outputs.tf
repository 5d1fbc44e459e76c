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

output "dashboard_name" {
  description = "CloudWatch dashboard of the stack."
  value       = module.realtime.dashboard_name
}
