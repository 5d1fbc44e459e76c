################################################################################
# WebSocket: the API clients connect to, its routes to the connection
# functions, and the @connections endpoint delivery posts to
################################################################################

locals {
  # Route key => the function behind it, and whether the route answers the client (two-way).
  websocket_function_routes = {
    "$connect"    = { function = "ws-connect", two_way = false }
    "$disconnect" = { function = "ws-disconnect", two_way = false }
  }

  # Routes the gateway answers itself through a MOCK integration: no function invocation, no table write.
  # `ping` is a keepalive (API Gateway closes sockets idle for 10 minutes) and a liveness probe for the
  # client; live connections are verified by maintenance instead (GetConnection, realtime.connections.sweep).
  # `$default` answers every frame without a known action with the error frame docs/design.md promises.
  # The frames are mapping templates (VTL): no `$` or `#` may appear in them.
  websocket_gateway_answers = {
    "ping" = jsonencode({ type = "pong" })
    "$default" = jsonencode({
      type  = "error"
      error = { code = "unknown_action", message = "frames are JSON objects with an action; supported actions: ping" }
    })
  }

  websocket_routes = merge(
    { for k, r in local.websocket_function_routes : k => { two_way = r.two_way, integration_id = aws_apigatewayv2_integration.websocket[k].id } },
    { for k in keys(local.websocket_gateway_answers) : k => { two_way = true, integration_id = aws_apigatewayv2_integration.gateway_answer[k].id } },
  )

  websocket_two_way_routes = { for k, v in local.websocket_routes : k => v if v.two_way }

  # The @connections management endpoint the functions that post and close connections are given.
  websocket_management_endpoint = (
    var.websocket_management_endpoint != null
    ? replace(replace(var.websocket_management_endpoint, "{api_id}", aws_apigatewayv2_api.websocket.id), "{stage}", var.websocket_stage_name)
    : "https://${aws_apigatewayv2_api.websocket.id}.execute-api.${local.region}.${local.dns_suffix}/${var.websocket_stage_name}"
  )

  # An emulator serves both APIs under its own URL scheme, the one websocket_management_endpoint's
  # template gives (allowed by allow_custom_management_endpoint): the client URLs follow it there, so
  # the module's outputs are right on AWS and on the emulator alike.
  custom_api_urls = var.websocket_management_endpoint != null && var.allow_custom_management_endpoint
  # Your own names (custom_domains) come first.
  client_websocket_url = (
    var.custom_domains.websocket != null ? "wss://${var.custom_domains.websocket.domain_name}"
    : local.custom_api_urls ? replace(local.websocket_management_endpoint, "/^http/", "ws")
    : aws_apigatewayv2_stage.websocket.invoke_url
  )
  client_http_api_url = trimsuffix(
    var.custom_domains.http != null ? "https://${var.custom_domains.http.domain_name}"
    : local.custom_api_urls ? replace(replace(var.websocket_management_endpoint, "{api_id}", aws_apigatewayv2_api.http.id), "{stage}", "$default")
    : aws_apigatewayv2_stage.http.invoke_url,
    "/",
  )

  # Delivery (process-events, fanout): posting frames, and closing connections whose token expired
  # (DeleteConnection is DELETE @connections/{id}).
  post_to_connections_statement = {
    sid     = "PostToConnections"
    actions = ["execute-api:ManageConnections"]
    resources = [for method in ["POST", "DELETE"] :
      "${aws_apigatewayv2_api.websocket.execution_arn}/${var.websocket_stage_name}/${method}/@connections/*"
    ]
  }
}

################################################################################
# Throttles: sized from the sockets expected (expected_connections), so that no
# default refuses a keepalive, a connect or a reconnect at that size
################################################################################

locals {
  # API Gateway's default quotas per account and Region: 10,000 requests/s (burst 5,000) across all
  # its APIs and @connections ("Amazon API Gateway quotas"); 500 new WebSocket connections/s across
  # all WebSocket APIs ("Quotas for configuring and running a WebSocket in API Gateway").
  api_gateway_account_quota     = { requests_per_second = 10000, burst = 5000, websocket_connects_per_second = 500 }
  websocket_throttling_headroom = 1.5

  # One ping per socket per interval (60 s: both clients' default on a visible page); 1% of the sockets reconnecting a minute.
  websocket_pings_per_second      = var.expected_connections / var.websocket_ping_interval_seconds
  websocket_reconnects_per_second = var.expected_connections * 0.01 / 60

  websocket_ping_rate = min(local.api_gateway_account_quota.requests_per_second, ceil(local.websocket_pings_per_second * local.websocket_throttling_headroom))
  # Never under half the account's new connections/s (a reconnect storm after a deployment comes back
  # in N / 250 s) nor over all of it; the burst takes the storm's first second, within the quota.
  websocket_connect_rate = min(local.api_gateway_account_quota.websocket_connects_per_second, max(local.api_gateway_account_quota.websocket_connects_per_second / 2, ceil(local.websocket_reconnects_per_second * local.websocket_throttling_headroom)))

  websocket_derived_route_throttling = {
    "$connect" = { burst_limit = min(local.api_gateway_account_quota.websocket_connects_per_second, 2 * local.websocket_connect_rate), rate_limit = local.websocket_connect_rate }
    "ping"     = { burst_limit = min(local.api_gateway_account_quota.burst, ceil(local.websocket_ping_rate / 2)), rate_limit = local.websocket_ping_rate }
    # Unknown actions: no client sends one; a flood of them is refused here, not by the stage.
    "$default" = { burst_limit = 50, rate_limit = 25 }
  }
  # Explicit input wins, as given (only the routes it lists).
  websocket_route_throttling = var.websocket_route_throttling != null ? var.websocket_route_throttling : local.websocket_derived_route_throttling

  # The stage covers every route's throttle at once (whatever it is on its own), within the account's.
  websocket_stage_budget = merge(local.websocket_derived_route_throttling, local.websocket_route_throttling)
  websocket_throttling_rate_limit = coalesce(
    var.websocket_throttling_rate_limit,
    min(local.api_gateway_account_quota.requests_per_second, sum([for t in values(local.websocket_stage_budget) : t.rate_limit])),
  )
  websocket_throttling_burst_limit = coalesce(
    var.websocket_throttling_burst_limit,
    min(local.api_gateway_account_quota.burst, sum([for t in values(local.websocket_stage_budget) : t.burst_limit])),
  )
}

################################################################################
# WebSocket API
################################################################################

resource "aws_apigatewayv2_api" "websocket" {
  name                       = "${var.name}-ws"
  description                = "Real-time events and presence (${var.name})"
  protocol_type              = "WEBSOCKET"
  route_selection_expression = "$request.body.action"

  tags = merge(var.tags, { Name = "${var.name}-ws" })
}

################################################################################
# Routes: one function per route that needs one; the gateway's own answers on
# ping and $default
################################################################################

resource "aws_apigatewayv2_integration" "websocket" {
  for_each = local.websocket_function_routes

  api_id             = aws_apigatewayv2_api.websocket.id
  description        = "${each.key} -> ${local.function_names[each.value.function]}"
  integration_type   = "AWS_PROXY"
  integration_method = "POST"
  integration_uri    = aws_lambda_function.this[each.value.function].invoke_arn
}

resource "aws_apigatewayv2_route" "websocket" {
  for_each = local.websocket_routes

  #checkov:skip=CKV_AWS_309:The token is verified by the ws-connect function on $connect (browsers cannot send headers, it travels as a query parameter); API Gateway authorizers apply to $connect only, and every later frame belongs to that verified connection.

  api_id    = aws_apigatewayv2_api.websocket.id
  route_key = each.key
  target    = "integrations/${each.value.integration_id}"

  authorization_type = "NONE"

  # Two-way routes send the function's response back to the client.
  route_response_selection_expression = each.value.two_way ? "$default" : null
}

resource "aws_apigatewayv2_route_response" "websocket" {
  for_each = local.websocket_two_way_routes

  api_id             = aws_apigatewayv2_api.websocket.id
  route_id           = aws_apigatewayv2_route.websocket[each.key].id
  route_response_key = "$default"
}

# Pings, unknown actions and frames that are not JSON cost no Lambda call: a mock integration answers them.
resource "aws_apigatewayv2_integration" "gateway_answer" {
  for_each = local.websocket_gateway_answers

  api_id                        = aws_apigatewayv2_api.websocket.id
  description                   = "${each.key} -> answered by the gateway (no function)"
  integration_type              = "MOCK"
  request_templates             = { "$default" = jsonencode({ statusCode = 200 }) }
  template_selection_expression = "\\$default"
}

resource "aws_apigatewayv2_integration_response" "gateway_answer" {
  for_each = local.websocket_gateway_answers

  api_id                        = aws_apigatewayv2_api.websocket.id
  integration_id                = aws_apigatewayv2_integration.gateway_answer[each.key].id
  integration_response_key      = "$default"
  response_templates            = { "$default" = each.value }
  template_selection_expression = "\\$default"
}

resource "aws_lambda_permission" "websocket" {
  for_each = local.websocket_function_routes

  statement_id  = "AllowWebSocketRoute-${trimprefix(each.key, "$")}"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.this[each.value.function].function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_apigatewayv2_api.websocket.execution_arn}/${var.websocket_stage_name}/${each.key}"
}

################################################################################
# Deployment and stage (auto-deploy does not exist for WebSocket APIs)
################################################################################

resource "aws_apigatewayv2_deployment" "websocket" {
  api_id      = aws_apigatewayv2_api.websocket.id
  description = "${var.name} WebSocket routes"

  triggers = {
    redeployment = sha1(jsonencode({
      routes       = { for k, r in aws_apigatewayv2_route.websocket : k => [r.id, r.target, r.route_response_selection_expression] }
      integrations = { for k, i in aws_apigatewayv2_integration.websocket : k => [i.id, i.integration_uri] }
      responses    = { for k, r in aws_apigatewayv2_route_response.websocket : k => [r.id, r.route_response_key] }
      answers      = { for k, i in aws_apigatewayv2_integration_response.gateway_answer : k => [i.integration_id, i.response_templates] }
    }))
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_cloudwatch_log_group" "websocket_access" {
  #checkov:skip=CKV_AWS_338:Retention is the log_retention_in_days input (default 30 days): these are operational logs, not an audit trail; keep them longer by setting the input.

  name              = "/aws/apigateway/${var.name}-ws/${var.websocket_stage_name}"
  retention_in_days = var.log_retention_in_days
  kms_key_id        = var.kms_key_arn

  tags = merge(var.tags, { Name = "/aws/apigateway/${var.name}-ws/${var.websocket_stage_name}" })
}

resource "aws_apigatewayv2_stage" "websocket" {
  #checkov:skip=CKV2_AWS_51:Clients are browsers connecting with a JWT; mutual TLS client certificates cannot be used by them (and need a custom domain).

  api_id        = aws_apigatewayv2_api.websocket.id
  name          = var.websocket_stage_name
  description   = "${var.name} WebSocket stage"
  deployment_id = aws_apigatewayv2_deployment.websocket.id

  default_route_settings {
    throttling_burst_limit = local.websocket_throttling_burst_limit
    throttling_rate_limit  = local.websocket_throttling_rate_limit
  }

  # Limits of their own on the routes any open socket can call at will, so a flood of frames spends
  # its route's budget, not what new connections and the account's other APIs need.
  dynamic "route_settings" {
    for_each = local.websocket_route_throttling

    content {
      route_key              = route_settings.key
      throttling_burst_limit = route_settings.value.burst_limit
      throttling_rate_limit  = route_settings.value.rate_limit
    }
  }

  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.websocket_access.arn
    format = jsonencode({
      requestId         = "$context.requestId"
      extendedRequestId = "$context.extendedRequestId"
      requestTime       = "$context.requestTime"
      ip                = "$context.identity.sourceIp"
      connectionId      = "$context.connectionId"
      eventType         = "$context.eventType"
      routeKey          = "$context.routeKey"
      status            = "$context.status"
      integrationStatus = "$context.integrationStatus"
      integrationError  = "$context.integrationErrorMessage"
      errorMessage      = "$context.error.message"
      latency           = "$context.integrationLatency"
    })
  }

  tags = merge(var.tags, { Name = "${var.name}-ws-${var.websocket_stage_name}" })

  depends_on = [aws_api_gateway_account.this]
}

################################################################################
# Account-level CloudWatch Logs role of API Gateway (optional, one per account
# and region): WebSocket stage logging fails without it.
################################################################################

resource "aws_iam_role" "api_gateway_cloudwatch" {
  count = var.create_api_gateway_cloudwatch_role ? 1 : 0

  name        = "${var.name}-apigateway-cloudwatch"
  description = "Lets API Gateway write the access logs of this account's stages to CloudWatch Logs"

  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "ApiGatewayAssumeRole"
      Effect    = "Allow"
      Principal = { Service = "apigateway.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })

  tags = merge(var.tags, { Name = "${var.name}-apigateway-cloudwatch" })
}

resource "aws_iam_role_policy_attachment" "api_gateway_cloudwatch" {
  count = var.create_api_gateway_cloudwatch_role ? 1 : 0

  role       = aws_iam_role.api_gateway_cloudwatch[0].name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs"
}

resource "aws_api_gateway_account" "this" {
  count = var.create_api_gateway_cloudwatch_role ? 1 : 0

  cloudwatch_role_arn = aws_iam_role.api_gateway_cloudwatch[0].arn

  depends_on = [aws_iam_role_policy_attachment.api_gateway_cloudwatch]
}
