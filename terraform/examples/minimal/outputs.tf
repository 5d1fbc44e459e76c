output "realtime" {
  description = "Where clients connect (websocket_url with ?token=<JWT>, http_api_url), where producers send (events_queue_url, with publisher_policy_json attached to their role), and the dashboard."
  value = {
    websocket_url         = module.realtime.websocket_url
    http_api_url          = module.realtime.http_api_url
    events_queue_url      = module.realtime.events_queue_url
    publisher_policy_json = module.realtime.publisher_policy_json
    dashboard_name        = module.realtime.dashboard_name
  }
}
