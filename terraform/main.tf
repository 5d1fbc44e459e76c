data "aws_region" "current" {}

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  region     = data.aws_region.current.name
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  dns_suffix = data.aws_partition.current.dns_suffix

  ################################################################################
  # Events queue
  ################################################################################

  # AWS recommends a visibility timeout of at least 6 x the consumer's timeout.
  events_queue_visibility_timeout = coalesce(var.events_queue_visibility_timeout_seconds, 6 * var.process_events_timeout)

  ################################################################################
  # WebSocket management endpoint (@connections) given to process-events
  ################################################################################

  websocket_management_endpoint = (
    var.websocket_management_endpoint != null
    ? replace(replace(var.websocket_management_endpoint, "{api_id}", aws_apigatewayv2_api.websocket.id), "{stage}", var.websocket_stage_name)
    : "https://${aws_apigatewayv2_api.websocket.id}.execute-api.${local.region}.${local.dns_suffix}/${var.websocket_stage_name}"
  )

  ################################################################################
  # Token secret
  ################################################################################

  token_ssm_parameter_arn = (
    var.token.secret_ssm_parameter_name == null ? null
    : "arn:${local.partition}:ssm:${local.region}:${local.account_id}:parameter/${trimprefix(var.token.secret_ssm_parameter_name, "/")}"
  )

  # Read access to the token secret, for ws-connect and events-api only.
  token_statements = concat(
    local.token_ssm_parameter_arn == null ? [] : [{
      sid       = "ReadTokenSecretParameter"
      actions   = ["ssm:GetParameter"]
      resources = [local.token_ssm_parameter_arn]
    }],
    var.token.secret_arn == null ? [] : [{
      sid       = "ReadTokenSecret"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = [var.token.secret_arn]
    }],
    var.token.kms_key_arn == null ? [] : [{
      sid       = "DecryptTokenSecret"
      actions   = ["kms:Decrypt"]
      resources = [var.token.kms_key_arn]
    }],
  )

  ################################################################################
  # Lambda functions: one per route or trigger (see docs/internals.md)
  ################################################################################

  maintenance_timeout = 300 # a run stops starting work 10 s before; the next run carries on

  # Each function's description and handler, and its memory, timeout and reserved concurrency
  # where they are not lambda_memory_size, lambda_timeout and none (-1: unreserved). presence-checks exists with presence only, db-changes
  # with db_changes_sources only.
  functions = { for k, f in merge(
    {
      "ws-connect" = {
        description = "WebSocket $connect: verifies the token and registers the connection and its topics"
        handler     = "realtime.handlers.ws_connect.handler"
      }
      "ws-disconnect" = {
        description = "WebSocket $disconnect: removes the connection and its subscriptions"
        handler     = "realtime.handlers.ws_disconnect.handler"
      }
      "ws-ping" = {
        description = "WebSocket ping route (two-way): notes the connection is alive and answers pong"
        handler     = "realtime.handlers.ws_ping.handler"
      }
      "process-events" = {
        description = "Events queue consumer: validates and stores events, posts small audiences, queues large ones"
        handler     = "realtime.handlers.process_events.handler"
        memory_size = var.process_events_memory_size
        timeout     = var.process_events_timeout
      }
      "fanout" = {
        description = "Fan-out queue consumer: posts pages of a large audience, and retries the posts that failed"
        handler     = "realtime.handlers.fanout.handler"
        memory_size = var.process_events_memory_size
        timeout     = var.process_events_timeout
      }
      "events-api" = {
        description          = "HTTP GET /events: the caller's events after a cursor, with optional long polling"
        handler              = "realtime.handlers.events_api.handler"
        timeout              = var.events_api_timeout
        reserved_concurrency = coalesce(var.events_api_reserved_concurrency, -1)
      }
      "maintenance" = {
        description = "Scheduled: removes connections whose $disconnect was missed and repairs presence"
        handler     = "realtime.handlers.maintenance.handler"
        timeout     = local.maintenance_timeout
      }
    },
    var.presence_enabled ? {
      "presence-checks" = {
        description = "Delayed offline checks: marks a user offline when the grace period passed without a new session"
        handler     = "realtime.handlers.presence_checks.handler"
        timeout     = local.presence_checks_timeout
      }
    } : {},
    local.db_changes_enabled ? {
      "db-changes" = {
        description = "Application-table stream consumer: turns item changes into events by the db_changes rules"
        handler     = "realtime.handlers.db_changes.handler"
        memory_size = var.db_changes_memory_size
        timeout     = var.db_changes_timeout
      }
    } : {},
  ) : k => merge({ memory_size = var.lambda_memory_size, timeout = var.lambda_timeout, reserved_concurrency = -1 }, f) }

  function_names = { for k in keys(local.functions) : k => "${var.name}-${k}" }

  # Every function's environment, besides the Powertools variables all of them get (docs/internals.md
  # says what each one means). A null value leaves the variable out: token settings that are not set,
  # and presence's variables when presence_enabled is false. A function missing from local.functions
  # is not deployed, and its entry here is not used.
  function_environment = {
    "ws-connect" = {
      CONNECTIONS_TABLE          = aws_dynamodb_table.this["connections"].name
      CONNECTION_TTL_SECONDS     = tostring(var.connection_ttl_seconds)
      MAX_SESSIONS_PER_USER      = tostring(var.max_sessions_per_user)
      MAX_TOPICS_PER_TOKEN       = tostring(var.max_topics_per_token)
      TOKEN_MODE                 = var.token.mode
      TOKEN_SECRET_SSM_PARAMETER = var.token.secret_ssm_parameter_name
      TOKEN_SECRET_ARN           = var.token.secret_arn
      TOKEN_JWKS_URL             = var.token.jwks_url
      TOKEN_ISSUER               = var.token.issuer
      TOKEN_AUDIENCE             = var.token.audience
      TOKEN_MAX_LIFETIME_SECONDS = tostring(var.token.max_lifetime_seconds)
      PRESENCE_TABLE             = local.presence.table
      PRESENCE_EVENTS_QUEUE_URL  = local.presence.events_queue_url
      GROUP_PRESENCE_ENABLED     = local.presence.group_enabled
    }
    "ws-disconnect" = {
      CONNECTIONS_TABLE         = aws_dynamodb_table.this["connections"].name
      PRESENCE_TABLE            = local.presence.table
      PRESENCE_CHECKS_QUEUE_URL = local.presence.checks_queue_url
      PRESENCE_GRACE_SECONDS    = local.presence.grace_seconds
    }
    "ws-ping" = {
      CONNECTIONS_TABLE        = aws_dynamodb_table.this["connections"].name
      STALE_CONNECTION_SECONDS = tostring(var.stale_connection_threshold_seconds) # lastSeen is written every half of it
      PRESENCE_TABLE           = local.presence.table
    }
    "process-events" = {
      CONNECTIONS_TABLE       = aws_dynamodb_table.this["connections"].name
      EVENTS_TABLE            = aws_dynamodb_table.this["events"].name
      EVENTS_QUEUE_URL        = aws_sqs_queue.events.url
      CONNECTIONS_ENDPOINT    = local.websocket_management_endpoint
      DLQ_URL                 = aws_sqs_queue.dead_letter["events-dlq"].url
      EVENT_TYPE_RULES        = jsonencode(var.event_type_rules)
      EVENT_RETENTION_SECONDS = tostring(var.event_retention_days * 86400)
      MAX_DATA_BYTES          = tostring(var.max_event_data_bytes)
      DELIVERY_CONCURRENCY    = tostring(var.delivery_concurrency)
      DELIVERY_MAX_ATTEMPTS   = tostring(var.delivery_max_attempts)
      FANOUT_THRESHOLD        = tostring(var.fanout_threshold)
      FANOUT_QUEUE_URL        = aws_sqs_queue.fanout.url
      # A connection found gone while delivering also ends its session.
      PRESENCE_TABLE            = local.presence.table
      PRESENCE_CHECKS_QUEUE_URL = local.presence.checks_queue_url
      PRESENCE_GRACE_SECONDS    = local.presence.grace_seconds
      # Presence events come from their own queue: only its records may use the presence types and ids.
      PRESENCE_EVENTS_QUEUE_URL = local.presence.events_queue_url
      PRESENCE_EVENTS_QUEUE_ARN = local.presence.events_queue_arn
    }
    "fanout" = {
      CONNECTIONS_TABLE         = aws_dynamodb_table.this["connections"].name
      CONNECTIONS_ENDPOINT      = local.websocket_management_endpoint
      FANOUT_QUEUE_URL          = aws_sqs_queue.fanout.url
      FANOUT_PAGE_SIZE          = tostring(var.fanout_page_size)
      FANOUT_CONCURRENCY        = tostring(var.fanout_concurrency)
      DELIVERY_MAX_ATTEMPTS     = tostring(var.delivery_max_attempts)
      PRESENCE_TABLE            = local.presence.table
      PRESENCE_CHECKS_QUEUE_URL = local.presence.checks_queue_url
      PRESENCE_GRACE_SECONDS    = local.presence.grace_seconds
    }
    "events-api" = {
      EVENTS_TABLE               = aws_dynamodb_table.this["events"].name
      MAX_TOPICS_PER_TOKEN       = tostring(var.max_topics_per_token)
      TOKEN_MODE                 = var.token.mode
      TOKEN_SECRET_SSM_PARAMETER = var.token.secret_ssm_parameter_name
      TOKEN_SECRET_ARN           = var.token.secret_arn
      TOKEN_JWKS_URL             = var.token.jwks_url
      TOKEN_ISSUER               = var.token.issuer
      TOKEN_AUDIENCE             = var.token.audience
      TOKEN_MAX_LIFETIME_SECONDS = tostring(var.token.max_lifetime_seconds)
      PRESENCE_TABLE             = local.presence.table
      MAX_PRESENCE_USERS         = local.presence.max_users
    }
    "presence-checks" = {
      PRESENCE_TABLE            = local.presence.table
      PRESENCE_EVENTS_QUEUE_URL = local.presence.events_queue_url
      GROUP_PRESENCE_ENABLED    = local.presence.group_enabled
    }
    "maintenance" = {
      CONNECTIONS_TABLE         = aws_dynamodb_table.this["connections"].name
      EVENTS_TABLE              = aws_dynamodb_table.this["events"].name
      CONNECTIONS_ENDPOINT      = local.websocket_management_endpoint
      STALE_CONNECTION_SECONDS  = tostring(var.stale_connection_threshold_seconds)
      PRESENCE_TABLE            = local.presence.table
      PRESENCE_CHECKS_QUEUE_URL = local.presence.checks_queue_url
      PRESENCE_GRACE_SECONDS    = local.presence.grace_seconds
      PRESENCE_EVENTS_QUEUE_URL = local.presence.events_queue_url
      GROUP_PRESENCE_ENABLED    = local.presence.group_enabled
    }
    "db-changes" = {
      EVENTS_QUEUE_URL      = aws_sqs_queue.events.url
      DB_CHANGE_SOURCES     = local.db_changes_sources_json
      FAILURES_QUEUE_URL    = try(aws_sqs_queue.dead_letter["db-changes-failures"].url, null)
      MAX_TOPICS_PER_RECORD = tostring(var.db_changes_max_topics_per_record)
    }
  }

  common_environment = {
    POWERTOOLS_SERVICE_NAME      = var.name
    POWERTOOLS_METRICS_NAMESPACE = var.metrics_namespace
    POWERTOOLS_LOG_LEVEL         = var.log_level
    # realtime.core.observability starts Powertools Tracer only when this is "false".
    POWERTOOLS_TRACE_DISABLED = var.lambda_tracing_mode == null ? "true" : "false"
  }

  # Without presence, a user's sessions are counted on an item of the connections table (max_sessions_per_user):
  # whoever opens or ends a session updates it.
  session_count_actions = var.presence_enabled ? [] : ["dynamodb:UpdateItem"]

  connections_table_statement = {
    for k, actions in {
      # A refused $connect removes what it wrote; sessions whose record is gone are found with BatchGetItem.
      "ws-connect"     = concat(["dynamodb:PutItem", "dynamodb:BatchWriteItem", "dynamodb:GetItem", "dynamodb:BatchGetItem"], local.session_count_actions)
      "ws-disconnect"  = concat(["dynamodb:GetItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"], local.session_count_actions)
      "ws-ping"        = ["dynamodb:GetItem", "dynamodb:UpdateItem"] # reads lastSeen before writing it
      "process-events" = concat(["dynamodb:Query", "dynamodb:GetItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"], local.session_count_actions)
      "fanout"         = concat(["dynamodb:Query", "dynamodb:GetItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"], local.session_count_actions)
      } : k => {
      sid       = "ConnectionsTable"
      actions   = actions
      resources = [aws_dynamodb_table.this["connections"].arn]
    }
  }

  # Delivery (process-events, fanout): posting frames, and closing connections whose token expired
  # (DeleteConnection is DELETE @connections/{id}); queueing the next pages and the retries.
  post_to_connections_statement = {
    sid     = "PostToConnections"
    actions = ["execute-api:ManageConnections"]
    resources = [for method in ["POST", "DELETE"] :
      "${aws_apigatewayv2_api.websocket.execution_arn}/${var.websocket_stage_name}/${method}/@connections/*"
    ]
  }
  queue_fanout_jobs_statement = {
    sid       = "QueueFanoutJobs"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.fanout.arn]
  }
  # Receive from / send to the KMS-encrypted queues.
  encrypted_queues_statements = var.kms_key_arn == null ? [] : [{
    sid       = "EncryptedQueues"
    actions   = ["kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
  }]

  # Everything a function may touch besides writing its own logs.
  core_function_statements = {
    "ws-connect"    = concat([local.connections_table_statement["ws-connect"]], local.token_statements)
    "ws-disconnect" = [local.connections_table_statement["ws-disconnect"]]
    "ws-ping"       = [local.connections_table_statement["ws-ping"]]
    "process-events" = concat(
      [
        {
          sid       = "ConsumeEventsQueue"
          actions   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ChangeMessageVisibility"]
          resources = [aws_sqs_queue.events.arn]
        },
        {
          sid       = "SendToDeadLetterQueue"
          actions   = ["sqs:SendMessage"]
          resources = [aws_sqs_queue.dead_letter["events-dlq"].arn]
        },
        {
          # Counters and idempotency records are read with BatchGetItem; TransactWriteItems is
          # authorized per contained action (Put/Update).
          sid       = "EventsTable"
          actions   = ["dynamodb:BatchGetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"]
          resources = [aws_dynamodb_table.this["events"].arn]
        },
        local.connections_table_statement["process-events"],
        local.post_to_connections_statement,
        local.queue_fanout_jobs_statement,
      ],
      local.encrypted_queues_statements,
    )
    "fanout" = concat(
      [
        {
          sid       = "ConsumeFanoutQueue"
          actions   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ChangeMessageVisibility"]
          resources = [aws_sqs_queue.fanout.arn]
        },
        local.queue_fanout_jobs_statement,
        local.connections_table_statement["fanout"],
        local.post_to_connections_statement,
      ],
      local.encrypted_queues_statements,
    )
    "events-api" = concat(
      [{
        # BatchGetItem reads the topics' counters (where each topic is); Query reads the topics that moved.
        sid       = "ReadEvents"
        actions   = ["dynamodb:BatchGetItem", "dynamodb:Query"]
        resources = [aws_dynamodb_table.this["events"].arn]
      }],
      local.token_statements,
    )
    "maintenance" = [
      {
        # Scan for stale connection records; GetItem/DeleteItem/BatchWriteItem to remove a dead
        # connection and its subscriptions; DescribeTable and a sampling Scan for expired records.
        sid       = "ConnectionsTable"
        actions   = concat(["dynamodb:Scan", "dynamodb:GetItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem", "dynamodb:DescribeTable"], local.session_count_actions)
        resources = [aws_dynamodb_table.this["connections"].arn]
      },
      {
        # DescribeTable and one sampling Scan page per run: events past retention that TTL has not deleted.
        sid       = "SampleEventsTable"
        actions   = ["dynamodb:Scan", "dynamodb:DescribeTable"]
        resources = [aws_dynamodb_table.this["events"].arn]
      },
      {
        # GetConnection is GET @connections/{id}; a connection whose token expired gets a last frame
        # (POST) and is closed (DELETE).
        sid     = "ManageConnections"
        actions = ["execute-api:ManageConnections"]
        resources = [for method in ["GET", "POST", "DELETE"] :
          "${aws_apigatewayv2_api.websocket.execution_arn}/${var.websocket_stage_name}/${method}/@connections/*"
        ]
      },
    ]
  }

  # Features add permissions to the core functions (presence) and bring their own functions' (presence, db_changes).
  function_statements = {
    for k in keys(local.functions) : k => flatten([
      for granted in [local.core_function_statements, local.presence_statements, local.db_changes_statements] :
      granted[k] if contains(keys(granted), k)
    ])
  }
}
