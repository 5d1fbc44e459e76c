# The WebSocket throttles sized from expected_connections: what each size gets, that explicit
# inputs win, and that sizes API Gateway's default account quotas cannot carry are refused.
# tests/tooling/test_capacity.py computes, from the same defaults, the sockets they sustain.

# Mocks and inputs shared by every test file: tests/mocks/aws.tfmock.hcl, tests/terraform.tfvars.
mock_provider "aws" {
  source = "./tests/mocks"
}

run "the_defaults_carry_100000_sockets_pinging_every_60_s" {
  command = plan

  assert {
    condition = {
      for r in aws_apigatewayv2_stage.websocket.route_settings : r.route_key => { burst_limit = r.throttling_burst_limit, rate_limit = r.throttling_rate_limit }
      } == {
      "$connect" = { burst_limit = 500, rate_limit = 250 }
      "ping"     = { burst_limit = 1250, rate_limit = 2500 }
      "$default" = { burst_limit = 50, rate_limit = 25 }
    }
    error_message = "100,000 sockets pinging every 60 s are 1,667 pings/s: ping gets 2,500/s (x 1.5, burst half of it); $connect 250/s (1%/min reconnecting is 17/s; never under half the account's 500/s), burst 500; $default 25/s."
  }

  assert {
    condition = (
      aws_apigatewayv2_stage.websocket.default_route_settings[0].throttling_rate_limit == 2775 &&
      aws_apigatewayv2_stage.websocket.default_route_settings[0].throttling_burst_limit == 1800
    )
    error_message = "The stage covers the routes' throttles at once: 2,500 + 250 + 25 = 2,775/s, burst 1,250 + 500 + 50 = 1,800."
  }
}

run "a_small_deployment_keeps_the_reconnect_floor" {
  command = plan

  variables {
    expected_connections = 1000
  }

  assert {
    condition = {
      for r in aws_apigatewayv2_stage.websocket.route_settings : r.route_key => [r.throttling_burst_limit, r.throttling_rate_limit]
    } == { "$connect" = [500, 250], "ping" = [13, 25], "$default" = [50, 25] }
    error_message = "1,000 sockets: ping 1,000 / 60 x 1.5 = 25/s (burst 13); $connect keeps 250/s so that a dropped deployment comes back in 4 s."
  }

  assert {
    condition = (
      aws_apigatewayv2_stage.websocket.default_route_settings[0].throttling_rate_limit == 300 &&
      aws_apigatewayv2_stage.websocket.default_route_settings[0].throttling_burst_limit == 563
    )
    error_message = "The stage is the routes' sum: 300/s, burst 563."
  }
}

run "two_million_sockets_at_300_s_fill_the_account_quotas" {
  command = plan

  variables {
    expected_connections            = 2000000
    websocket_ping_interval_seconds = 300
  }

  assert {
    condition = {
      for r in aws_apigatewayv2_stage.websocket.route_settings : r.route_key => [r.throttling_burst_limit, r.throttling_rate_limit]
    } == { "$connect" = [500, 500], "ping" = [5000, 10000], "$default" = [50, 25] }
    error_message = "2,000,000 sockets at 300 s: ping 6,667 x 1.5 = 10,000/s (burst 5,000); $connect 333 x 1.5 = 500/s, the account's new-connection quota."
  }

  assert {
    condition = (
      aws_apigatewayv2_stage.websocket.default_route_settings[0].throttling_rate_limit == 10000 &&
      aws_apigatewayv2_stage.websocket.default_route_settings[0].throttling_burst_limit == 5000
    )
    error_message = "The stage never passes API Gateway's account throttle (10,000/s, burst 5,000)."
  }
}

run "an_explicit_stage_throttle_wins" {
  command = plan

  variables {
    websocket_throttling_rate_limit  = 8000
    websocket_throttling_burst_limit = 4000
  }

  assert {
    condition = (
      aws_apigatewayv2_stage.websocket.default_route_settings[0].throttling_rate_limit == 8000 &&
      aws_apigatewayv2_stage.websocket.default_route_settings[0].throttling_burst_limit == 4000 &&
      toset([for r in aws_apigatewayv2_stage.websocket.route_settings : r.route_key]) == toset(["$connect", "$default", "ping"])
    )
    error_message = "websocket_throttling_rate_limit and _burst_limit, when set, are the stage's; the routes stay derived."
  }
}

run "explicit_route_throttles_win_and_the_stage_covers_them" {
  command = plan

  variables {
    expected_connections       = 1000000
    websocket_route_throttling = { "ping" = { burst_limit = 5000, rate_limit = 9000 } }
  }

  assert {
    condition = [
      for r in aws_apigatewayv2_stage.websocket.route_settings : [r.route_key, r.throttling_burst_limit, r.throttling_rate_limit]
    ] == [["ping", 5000, 9000]]
    error_message = "An explicit websocket_route_throttling is taken as given (and lets expected_connections pass what the default quotas carry)."
  }

  assert {
    condition = (
      aws_apigatewayv2_stage.websocket.default_route_settings[0].throttling_rate_limit == 9275 &&
      aws_apigatewayv2_stage.websocket.default_route_settings[0].throttling_burst_limit == 5000
    )
    error_message = "A derived stage covers the explicit ping throttle with the derived others: 9,000 + 250 + 25 = 9,275/s; burst 5,000 (the account's)."
  }
}

run "refuses_more_sockets_than_60_s_pings_fit_in_the_account" {
  command = plan

  variables {
    expected_connections = 1000000
  }

  expect_failures = [var.expected_connections]
}

run "refuses_a_fractional_socket_count" {
  command = plan

  variables {
    expected_connections = 1000.5
  }

  expect_failures = [var.expected_connections]
}

run "refuses_a_ping_interval_past_the_idle_timeout" {
  command = plan

  variables {
    websocket_ping_interval_seconds = 600
  }

  expect_failures = [var.websocket_ping_interval_seconds]
}

run "refuses_a_route_throttle_above_an_explicit_stage" {
  command = plan

  variables {
    websocket_throttling_rate_limit = 1000
    websocket_route_throttling      = { "ping" = { burst_limit = 10, rate_limit = 5000 } }
  }

  expect_failures = [var.websocket_route_throttling]
}
