################################################################################
# Events: the events queue producers send to, its DLQ, the events table, and
# process-events, which validates and stores each event and posts it to the
# topic's connections (large audiences go to the fan-out queue)
#
# Items of the events table (docs/internals.md):
#   event:       topic = <topic>,                  seq = 1, 2, ...
#   counter:     topic = <topic>,                  seq = 0 (lastSeq, never expires)
#   idempotency: topic = dedup#<topic>#<eventId>,  seq = 0
################################################################################

locals {
  # AWS recommends a visibility timeout of at least 6 x the consumer's timeout.
  events_queue_visibility_timeout = coalesce(var.events_queue_visibility_timeout_seconds, 6 * var.process_events_timeout)

  events_tables = {
    events = { hash_key = "topic", range_key = "seq", attributes = { topic = "S", seq = "N" }, expires = true }
  }

  events_queues          = { "events" = aws_sqs_queue.events }
  events_redrive_sources = { "events-dlq" = aws_sqs_queue.events.arn }
  events_dead_letter_queues = {
    "events-dlq" = {
      alarm   = "events-dlq-not-empty"
      meaning = "Events could not be processed; see their errorCode/errorReason attributes."
    }
  }

  # Who may send to the events queue besides the listed publishers: the module's own functions
  # (table changes; each role's own policy still says which queue it may use), and the operators,
  # whose redrive of the events DLQ sends to it as them.
  events_queue_senders = concat(var.events_queue_publisher_arns, sort(distinct(concat([for r in aws_iam_role.lambda : r.arn], var.queue_operator_arns))))

  # The module's own queues => the functions that send to them (queues.tf refuses every other sender).
  events_queue_sending_functions = {
    "events-dlq" = ["process-events"] # messages that can never be processed, with their reason
  }

  events_queue_policy_statements = {
    "events" = length(var.events_queue_publisher_arns) > 0 ? [{
      # Any principal of the account with sqs:SendMessage on "*" could otherwise publish to `all`.
      Sid       = "OnlyListedPublishers"
      Effect    = "Deny"
      Principal = "*"
      Action    = "sqs:SendMessage"
      Resource  = aws_sqs_queue.events.arn
      Condition = { ArnNotLike = { "aws:PrincipalArn" = local.events_queue_senders } }
    }] : []
  }

  events_functions = {
    "process-events" = {
      description = "Events queue consumer: validates and stores events, posts small audiences, queues large ones"
      handler     = "realtime.handlers.process_events.handler"
      memory_size = var.process_events_memory_size
      timeout     = var.process_events_timeout
      environment = {
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
        DELIVERY_ORDER_WAIT_MS  = tostring(var.delivery_order_wait_ms)
        FANOUT_THRESHOLD        = tostring(var.fanout_threshold)
        FANOUT_QUEUE_URL        = aws_sqs_queue.fanout.url
        SUBSCRIPTION_SHARDS     = local.subscription_shards_json
        POSTS_PER_SECOND        = tostring(local.delivery_posts_per_invocation)
      }
      # A connection found gone while delivering also ends its session; presence events come from their
      # own queue, and only its records may use the presence types and ids.
      sections = { presence = local.presence_environment.storing_presence }
      statements = concat(
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
          {
            sid       = "ConnectionsTable"
            actions   = concat(["dynamodb:Query", "dynamodb:GetItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"], local.session_count_actions)
            resources = [aws_dynamodb_table.this["connections"].arn]
          },
          local.post_to_connections_statement,
          local.queue_fanout_jobs_statement,
        ],
        local.encrypted_queues_statements,
        local.presence_statements["process-events"],
      )
    }
  }

  events_function_error_alarms = {
    "process-events" = { period = 60, evaluation_periods = 5, meaning = "its batches are retried, then redriven to the DLQ" }
  }
  events_queued_work = { "events" = "Events" }
  # Function => the most concurrent executions its mapping starts: near it, batches wait in the queue.
  events_concurrency_ceilings = { "process-events" = var.process_events_maximum_concurrency }
}

################################################################################
# Events queue (producers SendMessage here; process-events consumes)
################################################################################

resource "aws_sqs_queue" "events" {
  name = "${var.name}-events"

  visibility_timeout_seconds = local.events_queue_visibility_timeout
  message_retention_seconds  = var.events_queue_message_retention_seconds
  receive_wait_time_seconds  = 20 # long polling

  sqs_managed_sse_enabled           = var.kms_key_arn == null ? true : null
  kms_master_key_id                 = var.kms_key_arn
  kms_data_key_reuse_period_seconds = var.kms_key_arn == null ? null : 300

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dead_letter["events-dlq"].arn
    maxReceiveCount     = var.events_queue_max_receive_count
  })

  tags = merge(var.tags, { Name = "${var.name}-events" })
}

################################################################################
# process-events <- events queue, and with presence the presence-events queue
################################################################################

resource "aws_lambda_event_source_mapping" "process_events" {
  for_each = merge(
    { "events" = { arn = aws_sqs_queue.events.arn, name = "${var.name}-process-events" } },
    { for q in aws_sqs_queue.presence_events : "presence-events" => { arn = q.arn, name = q.name } },
  )

  event_source_arn = each.value.arn
  function_name    = aws_lambda_function.this["process-events"].arn

  batch_size                         = var.process_events_batch_size
  maximum_batching_window_in_seconds = var.process_events_maximum_batching_window_in_seconds
  function_response_types            = ["ReportBatchItemFailures"]

  scaling_config {
    maximum_concurrency = var.process_events_maximum_concurrency
  }

  tags = merge(var.tags, { Name = each.value.name })
}
