################################################################################
# Connections: the connections table and the functions behind the WebSocket
# routes: ws-connect ($connect) and ws-disconnect ($disconnect); the gateway
# answers ping itself (websocket.tf)
#
# Items (docs/internals.md):
#   connection:   pk = conn#<connectionId>, sk = meta
#   subscription: pk = topic#<topic>,       sk = conn#<connectionId>
################################################################################

locals {
  connections_tables = {
    connections = { hash_key = "pk", range_key = "sk", attributes = { pk = "S", sk = "S" }, expires = true }
  }

  # Without presence, a user's sessions are counted on an item of the connections table (max_sessions_per_user):
  # whoever opens or ends a session updates it.
  session_count_actions = var.presence_enabled ? [] : ["dynamodb:UpdateItem"]

  connections_functions = {
    "ws-connect" = {
      description = "WebSocket $connect: verifies the token and registers the connection and its topics"
      handler     = "realtime.handlers.ws_connect.handler"
      environment = {
        CONNECTIONS_TABLE      = aws_dynamodb_table.this["connections"].name
        CONNECTION_TTL_SECONDS = tostring(var.connection_ttl_seconds)
        MAX_SESSIONS_PER_USER  = tostring(var.max_sessions_per_user)
        MAX_TOPICS_PER_TOKEN   = tostring(var.max_topics_per_token)
      }
      sections = { token = local.token_environment, presence = local.presence_environment.announcing_presence }
      statements = concat(
        [{
          # A refused $connect removes what it wrote; sessions whose record is gone are found with BatchGetItem.
          sid       = "ConnectionsTable"
          actions   = concat(["dynamodb:PutItem", "dynamodb:BatchWriteItem", "dynamodb:GetItem", "dynamodb:BatchGetItem"], local.session_count_actions)
          resources = [aws_dynamodb_table.this["connections"].arn]
        }],
        local.token_statements,
        local.presence_statements["ws-connect"],
      )
    }

    "ws-disconnect" = {
      description = "WebSocket $disconnect: removes the connection and its subscriptions"
      handler     = "realtime.handlers.ws_disconnect.handler"
      environment = {
        CONNECTIONS_TABLE = aws_dynamodb_table.this["connections"].name
      }
      sections = { presence = local.presence_environment.ending_sessions }
      statements = concat(
        [{
          sid       = "ConnectionsTable"
          actions   = concat(["dynamodb:GetItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"], local.session_count_actions)
          resources = [aws_dynamodb_table.this["connections"].arn]
        }],
        local.presence_statements["ws-disconnect"],
      )
    }
  }
}
