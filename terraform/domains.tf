################################################################################
# Custom domains: your own names for the WebSocket and HTTP APIs (optional)
################################################################################

locals {
  custom_domains = { for k, d in { websocket = var.custom_domains.websocket, http = var.custom_domains.http } : k => d if d != null }

  custom_domain_apis = {
    websocket = { api_id = aws_apigatewayv2_api.websocket.id, stage = aws_apigatewayv2_stage.websocket.id }
    http      = { api_id = aws_apigatewayv2_api.http.id, stage = aws_apigatewayv2_stage.http.id }
  }
}

resource "aws_apigatewayv2_domain_name" "this" {
  for_each = local.custom_domains

  domain_name = each.value.domain_name

  domain_name_configuration {
    certificate_arn = each.value.certificate_arn
    endpoint_type   = "REGIONAL"
    security_policy = "TLS_1_2"
  }

  tags = merge(var.tags, { Name = each.value.domain_name })
}

# The name's root path is the API's stage: wss://<name> and https://<name>/events.
resource "aws_apigatewayv2_api_mapping" "this" {
  for_each = local.custom_domains

  domain_name = aws_apigatewayv2_domain_name.this[each.key].id
  api_id      = local.custom_domain_apis[each.key].api_id
  stage       = local.custom_domain_apis[each.key].stage
}
