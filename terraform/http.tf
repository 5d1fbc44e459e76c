################################################################################
# HTTP: GET /events (and with presence GET /presence), the HTTPS fallback and
# catch-up path, answered by events-api
################################################################################

locals {
  # Route key => function. Payload format 2.0, one function per route.
  http_routes = merge(
    { "GET /events" = "events-api" },
    var.presence_enabled ? { "GET /presence" = "events-api" } : {},
  )

  http_functions = {
    "events-api" = {
      description          = "HTTP GET /events: the caller's events after a cursor, with optional long polling"
      handler              = "realtime.handlers.events_api.handler"
      timeout              = var.events_api_timeout
      reserved_concurrency = coalesce(var.events_api_reserved_concurrency, -1)
      environment = {
        EVENTS_TABLE         = aws_dynamodb_table.this["events"].name
        MAX_TOPICS_PER_TOKEN = tostring(var.max_topics_per_token)
      }
      sections = { token = local.token_environment, presence = local.presence_environment.reading_presence }
      statements = concat(
        [{
          # BatchGetItem reads the topics' counters (where each topic is); Query reads the topics that moved.
          sid       = "ReadEvents"
          actions   = ["dynamodb:BatchGetItem", "dynamodb:Query"]
          resources = [aws_dynamodb_table.this["events"].arn]
        }],
        local.token_statements,
        local.presence_statements["events-api"],
      )
    }
  }
}

################################################################################
# HTTP API
################################################################################

resource "aws_apigatewayv2_api" "http" {
  name          = "${var.name}-http"
  description   = "Events over HTTPS (${var.name})"
  protocol_type = "HTTP"

  # No origins, no CORS configuration: browsers on other origins are refused (the default).
  dynamic "cors_configuration" {
    for_each = length(var.cors_allow_origins) > 0 ? [var.cors_allow_origins] : []

    content {
      allow_origins = cors_configuration.value
      allow_headers = ["authorization", "content-type"]
      allow_methods = ["GET", "OPTIONS"]
      # A throttled poll's Retry-After must reach the browser client, which waits it out before polling again.
      expose_headers = ["retry-after"]
      max_age        = 3600
    }
  }

  tags = merge(var.tags, { Name = "${var.name}-http" })
}

resource "aws_apigatewayv2_integration" "http" {
  for_each = local.http_routes

  api_id                 = aws_apigatewayv2_api.http.id
  description            = "${each.key} -> ${local.function_names[each.value]}"
  integration_type       = "AWS_PROXY"
  integration_method     = "POST"
  integration_uri        = aws_lambda_function.this[each.value].invoke_arn
  payload_format_version = "2.0"
  timeout_milliseconds   = 30000
}

resource "aws_apigatewayv2_route" "http" {
  for_each = local.http_routes

  #checkov:skip=CKV_AWS_309:The bearer token is verified by the events-api function (HS256 secrets cannot be checked by an API Gateway JWT authorizer, and the function also scopes results to the token's topics).

  api_id    = aws_apigatewayv2_api.http.id
  route_key = each.key
  target    = "integrations/${aws_apigatewayv2_integration.http[each.key].id}"

  authorization_type = "NONE"
}

resource "aws_lambda_permission" "http" {
  for_each = local.http_routes

  statement_id  = "AllowHttpRoute-${replace(replace(each.key, " /", "-"), "/", "-")}"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.this[each.value].function_name
  principal     = "apigateway.amazonaws.com"
  # arn:...:<api-id>/<stage>/<METHOD>/<path>, any stage: this route only.
  source_arn = "${aws_apigatewayv2_api.http.execution_arn}/*/${replace(each.key, " /", "/")}"
}

################################################################################
# Stage
################################################################################

resource "aws_cloudwatch_log_group" "http_access" {
  #checkov:skip=CKV_AWS_338:Retention is the log_retention_in_days input (default 30 days): these are operational logs, not an audit trail; keep them longer by setting the input.

  name              = "/aws/apigateway/${var.name}-http/default"
  retention_in_days = var.log_retention_in_days
  kms_key_id        = var.kms_key_arn

  tags = merge(var.tags, { Name = "/aws/apigateway/${var.name}-http/default" })
}

resource "aws_apigatewayv2_stage" "http" {
  api_id      = aws_apigatewayv2_api.http.id
  name        = "$default"
  description = "${var.name} HTTP stage"
  auto_deploy = true

  default_route_settings {
    throttling_burst_limit = var.http_throttling_burst_limit
    throttling_rate_limit  = var.http_throttling_rate_limit
  }

  # Long polls hold a function execution each: their route's rate bounds how many at once (http_route_throttling),
  # so the HTTP fallback cannot take the account's Lambda concurrency from delivery. Only routes the API has.
  dynamic "route_settings" {
    for_each = { for k, t in var.http_route_throttling : k => t if contains(keys(local.http_routes), k) }

    content {
      route_key              = route_settings.key
      throttling_burst_limit = route_settings.value.burst_limit
      throttling_rate_limit  = route_settings.value.rate_limit
    }
  }

  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.http_access.arn
    format = jsonencode({
      requestId        = "$context.requestId"
      requestTime      = "$context.requestTime"
      ip               = "$context.identity.sourceIp"
      httpMethod       = "$context.httpMethod"
      path             = "$context.path"
      routeKey         = "$context.routeKey"
      status           = "$context.status"
      protocol         = "$context.protocol"
      responseLength   = "$context.responseLength"
      latency          = "$context.integrationLatency"
      integrationError = "$context.integrationErrorMessage"
      errorMessage     = "$context.error.message"
    })
  }

  tags = merge(var.tags, { Name = "${var.name}-http-default" })

  # Route settings name routes that must exist first.
  depends_on = [aws_apigatewayv2_route.http]
}
