################################################################################
# Connections: the connections table and the functions behind the WebSocket
# routes: ws-connect ($connect) and ws-disconnect ($disconnect); the gateway
# answers ping itself (websocket.tf)
#
# Items (docs/internals.md):
#   connection:   pk = conn#<connectionId>,             sk = meta
#   subscription: pk = topic#<topic>[#<shard>],          sk = conn#<connectionId>
#   layout:       pk = layout,                           sk = subscriptions
################################################################################

locals {
  connections_tables = {
    connections = { hash_key = "pk", range_key = "sk", attributes = { pk = "S", sk = "S" }, expires = true }
  }

  # Without presence, a user's sessions are counted on an item of the connections table (max_sessions_per_user):
  # whoever opens or ends a session updates it.
  session_count_actions = var.presence_enabled ? [] : ["dynamodb:UpdateItem"]

  # Topic (or kind:*) -> how many keys its subscription rows are spread over (realtime.connections.layout).
  subscription_shards_json = jsonencode(var.subscription_shards)

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

################################################################################
# Subscription layout: what ws-connect reads to know how many keys each topic's
# rows go to. Written only after every function is updated, so that the readers
# (process-events, fanout, from SUBSCRIPTION_SHARDS) gather every shard before
# the writer writes to it, also while a running deployment is upgraded
################################################################################

resource "aws_dynamodb_table_item" "subscription_layout" {
  table_name = aws_dynamodb_table.this["connections"].name
  hash_key   = "pk"
  range_key  = "sk"

  item = jsonencode({
    pk     = { S = "layout" }
    sk     = { S = "subscriptions" }
    shards = { S = local.subscription_shards_json }
  })

  depends_on = [aws_lambda_function.this]
}
