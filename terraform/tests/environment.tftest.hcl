# Each function gets exactly the environment variables docs/internals.md lists
# (lambda.tf's local.function_environment, merged from the feature files' function
# entries and their settings sections), with presence on and off: a variable
# missing here fails the function at run time, an extra one is noise.
# db_changes.tftest.hcl checks the db-changes function's.

# Mocks and inputs shared by every test file: tests/mocks/aws.tfmock.hcl, tests/terraform.tfvars.
mock_provider "aws" {
  source = "./tests/mocks"
}

run "each_function_gets_its_variables" {
  command = apply

  assert {
    condition = jsonencode({ for k, f in aws_lambda_function.this : k => [for v in keys(f.environment[0].variables) : v if !startswith(v, "POWERTOOLS_")] }) == jsonencode({
      "events-api"      = ["EVENTS_TABLE", "MAX_PRESENCE_USERS", "MAX_TOPICS_PER_TOKEN", "PRESENCE_TABLE", "TOKEN_AUDIENCE", "TOKEN_ISSUER", "TOKEN_MAX_LIFETIME_SECONDS", "TOKEN_MODE", "TOKEN_SECRET_SSM_PARAMETER"]
      "fanout"          = ["CONNECTIONS_ENDPOINT", "CONNECTIONS_TABLE", "DELIVERY_MAX_ATTEMPTS", "EVENTS_TABLE", "FANOUT_CONCURRENCY", "FANOUT_PAGE_SIZE", "FANOUT_QUEUE_URL", "POSTS_PER_SECOND", "PRESENCE_CHECKS_QUEUE_URL", "PRESENCE_GRACE_SECONDS", "PRESENCE_TABLE", "SUBSCRIPTION_SHARDS"]
      "maintenance"     = ["CONNECTIONS_ENDPOINT", "CONNECTIONS_TABLE", "CONNECTION_CHECKS_PER_SECOND", "EVENTS_TABLE", "GROUP_PRESENCE_ENABLED", "MAINTENANCE_SCAN_ITEMS", "PRESENCE_CHECKS_QUEUE_URL", "PRESENCE_EVENTS_QUEUE_URL", "PRESENCE_GRACE_SECONDS", "PRESENCE_TABLE", "STALE_CONNECTION_SECONDS"]
      "presence-checks" = ["GROUP_PRESENCE_ENABLED", "PRESENCE_EVENTS_QUEUE_URL", "PRESENCE_TABLE"]
      "process-events"  = ["CONNECTIONS_ENDPOINT", "CONNECTIONS_TABLE", "DELIVERY_CONCURRENCY", "DELIVERY_MAX_ATTEMPTS", "DELIVERY_ORDER_WAIT_MS", "DLQ_URL", "EVENTS_QUEUE_URL", "EVENTS_TABLE", "EVENT_RETENTION_SECONDS", "EVENT_TYPE_RULES", "FANOUT_QUEUE_URL", "FANOUT_THRESHOLD", "MAX_DATA_BYTES", "POSTS_PER_SECOND", "PRESENCE_CHECKS_QUEUE_URL", "PRESENCE_EVENTS_QUEUE_ARN", "PRESENCE_EVENTS_QUEUE_URL", "PRESENCE_GRACE_SECONDS", "PRESENCE_TABLE", "SUBSCRIPTION_SHARDS"]
      "ws-connect"      = ["CONNECTIONS_TABLE", "CONNECTION_TTL_SECONDS", "GROUP_PRESENCE_ENABLED", "MAX_SESSIONS_PER_USER", "MAX_TOPICS_PER_TOKEN", "PRESENCE_EVENTS_QUEUE_URL", "PRESENCE_TABLE", "TOKEN_AUDIENCE", "TOKEN_ISSUER", "TOKEN_MAX_LIFETIME_SECONDS", "TOKEN_MODE", "TOKEN_SECRET_SSM_PARAMETER"]
      "ws-disconnect"   = ["CONNECTIONS_TABLE", "PRESENCE_CHECKS_QUEUE_URL", "PRESENCE_GRACE_SECONDS", "PRESENCE_TABLE"]
    })
    error_message = "Each function must get exactly the variables docs/internals.md lists for it (besides the Powertools ones)."
  }

  assert {
    condition = alltrue([for f in aws_lambda_function.this :
      f.environment[0].variables["POWERTOOLS_SERVICE_NAME"] == "rt-test" &&
      f.environment[0].variables["POWERTOOLS_METRICS_NAMESPACE"] == "RealtimeEvents" &&
      f.environment[0].variables["POWERTOOLS_LOG_LEVEL"] == "INFO" &&
      f.environment[0].variables["POWERTOOLS_TRACE_DISABLED"] == "true"
    ])
    error_message = "Every function gets the Powertools variables; tracing is off by default."
  }
}

run "without_presence_no_function_hears_of_it" {
  command = apply

  variables {
    presence_enabled = false
  }

  assert {
    condition = jsonencode({ for k, f in aws_lambda_function.this : k => [for v in keys(f.environment[0].variables) : v if !startswith(v, "POWERTOOLS_")] }) == jsonencode({
      "events-api"     = ["EVENTS_TABLE", "MAX_TOPICS_PER_TOKEN", "TOKEN_AUDIENCE", "TOKEN_ISSUER", "TOKEN_MAX_LIFETIME_SECONDS", "TOKEN_MODE", "TOKEN_SECRET_SSM_PARAMETER"]
      "fanout"         = ["CONNECTIONS_ENDPOINT", "CONNECTIONS_TABLE", "DELIVERY_MAX_ATTEMPTS", "EVENTS_TABLE", "FANOUT_CONCURRENCY", "FANOUT_PAGE_SIZE", "FANOUT_QUEUE_URL", "POSTS_PER_SECOND", "SUBSCRIPTION_SHARDS"]
      "maintenance"    = ["CONNECTIONS_ENDPOINT", "CONNECTIONS_TABLE", "CONNECTION_CHECKS_PER_SECOND", "EVENTS_TABLE", "MAINTENANCE_SCAN_ITEMS", "STALE_CONNECTION_SECONDS"]
      "process-events" = ["CONNECTIONS_ENDPOINT", "CONNECTIONS_TABLE", "DELIVERY_CONCURRENCY", "DELIVERY_MAX_ATTEMPTS", "DELIVERY_ORDER_WAIT_MS", "DLQ_URL", "EVENTS_QUEUE_URL", "EVENTS_TABLE", "EVENT_RETENTION_SECONDS", "EVENT_TYPE_RULES", "FANOUT_QUEUE_URL", "FANOUT_THRESHOLD", "MAX_DATA_BYTES", "POSTS_PER_SECOND", "SUBSCRIPTION_SHARDS"]
      "ws-connect"     = ["CONNECTIONS_TABLE", "CONNECTION_TTL_SECONDS", "MAX_SESSIONS_PER_USER", "MAX_TOPICS_PER_TOKEN", "TOKEN_AUDIENCE", "TOKEN_ISSUER", "TOKEN_MAX_LIFETIME_SECONDS", "TOKEN_MODE", "TOKEN_SECRET_SSM_PARAMETER"]
      "ws-disconnect"  = ["CONNECTIONS_TABLE"]
    })
    error_message = "Without presence, no function may get a presence variable (and presence-checks does not exist)."
  }
}

# The readers (process-events, fanout) get the subscription layout from their environment; the writer
# (ws-connect) from the layout item, written only once every function has been updated (depends_on), so a
# running deployment's readers gather a shard before any connection is written to it.
run "the_subscription_layout_reaches_the_readers_and_then_the_writer" {
  command = apply

  variables {
    subscription_shards = { all = 32, "group:*" = 4, "group:tiny" = 1 }
  }

  assert {
    condition = alltrue([for k in ["process-events", "fanout"] :
      jsondecode(aws_lambda_function.this[k].environment[0].variables["SUBSCRIPTION_SHARDS"]) == { all = 32, "group:*" = 4, "group:tiny" = 1 }
    ])
    error_message = "process-events and fanout must read the topics' shard counts from SUBSCRIPTION_SHARDS."
  }

  assert {
    condition     = jsondecode(aws_dynamodb_table_item.subscription_layout.item).shards.S == aws_lambda_function.this["fanout"].environment[0].variables["SUBSCRIPTION_SHARDS"]
    error_message = "The layout item must hold what the readers were given."
  }

  assert {
    condition     = jsondecode(aws_dynamodb_table_item.subscription_layout.item).pk.S == "layout" && jsondecode(aws_dynamodb_table_item.subscription_layout.item).sk.S == "subscriptions"
    error_message = "ws-connect reads the layout item at pk = layout, sk = subscriptions (realtime.connections.layout.LAYOUT_KEY)."
  }
}

run "the_default_layout_spreads_the_broadcast_topic_over_16_keys" {
  command = plan

  assert {
    condition     = jsondecode(aws_lambda_function.this["process-events"].environment[0].variables["SUBSCRIPTION_SHARDS"]) == { all = 16 }
    error_message = "By default only `all` is spread, over 16 keys (subscription_shards)."
  }
}

# One post budget for the module: every delivery invocation that may run at once gets an even share.
run "the_post_budget_is_shared_by_every_delivery_invocation" {
  command = plan

  assert {
    condition = alltrue([for k in ["process-events", "fanout"] :
      aws_lambda_function.this[k].environment[0].variables["POSTS_PER_SECOND"] == "195"
    ])
    error_message = "By default 10,000 - 100,000 / 60 - 250 - 250 = 7,833 posts/s over 2 x 10 + 20 invocations: 195 each."
  }
}

run "a_raised_post_budget_is_split_the_same_way" {
  command = plan

  variables {
    delivery_posts_per_second  = 30000
    fanout_maximum_concurrency = 60
  }

  assert {
    condition     = aws_lambda_function.this["fanout"].environment[0].variables["POSTS_PER_SECOND"] == "375"
    error_message = "30,000 posts/s over 2 x 10 + 60 invocations is 375 each."
  }
}
