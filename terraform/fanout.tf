################################################################################
# Fan-out: large audiences in pages, and retried posts
#
# process-events posts the first fanout_threshold connections of each topic
# itself and queues a job for the rest; the fanout function posts one page of
# fanout_page_size connections per job, queueing the next page first so pages
# are posted in parallel. Posts that failed transiently come back as delayed
# retry jobs on the same queue. Jobs refer to stored events by id and seqs: the
# function reads each back from the events table, and checks a retry job's
# connections against their records (see realtime/events/delivery.py).
################################################################################

locals {
  fanout_queues          = { "fanout" = aws_sqs_queue.fanout }
  fanout_redrive_sources = { "fanout-dlq" = aws_sqs_queue.fanout.arn }
  fanout_dead_letter_queues = {
    "fanout-dlq" = {
      alarm   = "fanout-dlq-not-empty"
      meaning = "Fan-out jobs failed repeatedly (a page could not be read, or a job not queued): those connections missed the event until their clients catch up over HTTP."
    }
  }

  # The module's own queues => the functions that send to them (queues.tf refuses every other sender).
  # The DLQ gets its messages from SQS itself, after maxReceiveCount: no function sends to it.
  fanout_queue_sending_functions = {
    "fanout"     = ["process-events", "fanout"] # first pages; next pages and retries
    "fanout-dlq" = []
  }

  # Queueing the next pages and the retries (process-events queues the first page).
  queue_fanout_jobs_statement = {
    sid       = "QueueFanoutJobs"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.fanout.arn]
  }

  # One post budget for the whole module (delivery_posts_per_second): by default what API Gateway's account
  # quota leaves after the expected sockets' pings, maintenance's checks and the $connect throttle. Split
  # evenly over every delivery invocation that may run at once (both process-events mappings and the fanout
  # mapping, at their maximum_concurrency), so that all of them together never pass it.
  delivery_posts_budget = coalesce(var.delivery_posts_per_second, max(1000, floor(
    local.api_gateway_account_quota.requests_per_second - local.websocket_pings_per_second -
    var.maintenance_connection_checks_per_second - local.websocket_connect_rate
  )))
  delivery_invocations_at_once  = 2 * var.process_events_maximum_concurrency + var.fanout_maximum_concurrency
  delivery_posts_per_invocation = max(1, floor(local.delivery_posts_budget / local.delivery_invocations_at_once))

  fanout_functions = {
    "fanout" = {
      description = "Fan-out queue consumer: posts pages of a large audience, and retries the posts that failed"
      handler     = "realtime.handlers.fanout.handler"
      memory_size = var.fanout_memory_size
      timeout     = var.fanout_timeout
      environment = {
        CONNECTIONS_TABLE     = aws_dynamodb_table.this["connections"].name
        EVENTS_TABLE          = aws_dynamodb_table.this["events"].name
        CONNECTIONS_ENDPOINT  = local.websocket_management_endpoint
        FANOUT_QUEUE_URL      = aws_sqs_queue.fanout.url
        FANOUT_PAGE_SIZE      = tostring(var.fanout_page_size)
        FANOUT_CONCURRENCY    = tostring(var.fanout_concurrency)
        DELIVERY_MAX_ATTEMPTS = tostring(var.delivery_max_attempts)
        SUBSCRIPTION_SHARDS   = local.subscription_shards_json
        POSTS_PER_SECOND      = tostring(local.delivery_posts_per_invocation)
      }
      sections = { presence = local.presence_environment.ending_sessions }
      statements = concat(
        [
          {
            sid       = "ConsumeFanoutQueue"
            actions   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ChangeMessageVisibility"]
            resources = [aws_sqs_queue.fanout.arn]
          },
          local.queue_fanout_jobs_statement,
          {
            sid       = "ConnectionsTable"
            actions   = concat(["dynamodb:Query", "dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"], local.session_count_actions)
            resources = [aws_dynamodb_table.this["connections"].arn]
          },
          {
            # A job names a stored event: the event is read back, never taken from the job.
            sid       = "ReadJobsEvents"
            actions   = ["dynamodb:BatchGetItem"]
            resources = [aws_dynamodb_table.this["events"].arn]
          },
          local.post_to_connections_statement,
        ],
        local.encrypted_queues_statements,
        local.presence_statements["fanout"],
      )
    }
  }

  fanout_function_error_alarms = {
    "fanout" = { period = 60, evaluation_periods = 5, meaning = "its jobs are retried, then redriven to the fanout DLQ" }
  }
  fanout_queued_work = { "fanout" = "Fan-out jobs" }
  # Function => the most concurrent executions its mapping starts: near it, pages and retries wait in the queue.
  fanout_concurrency_ceilings = { "fanout" = var.fanout_maximum_concurrency }
}

################################################################################
# Fan-out queue, and its consumer's mapping (one job per invocation)
################################################################################

resource "aws_sqs_queue" "fanout" {
  name = "${var.name}-fanout"

  visibility_timeout_seconds = 6 * var.fanout_timeout # AWS recommends at least 6 x the consumer's timeout
  message_retention_seconds  = 86400                  # a day-old job is stale: its clients have caught up over HTTP
  receive_wait_time_seconds  = 20

  sqs_managed_sse_enabled           = var.kms_key_arn == null ? true : null
  kms_master_key_id                 = var.kms_key_arn
  kms_data_key_reuse_period_seconds = var.kms_key_arn == null ? null : 300

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dead_letter["fanout-dlq"].arn
    maxReceiveCount     = var.events_queue_max_receive_count
  })

  tags = merge(var.tags, { Name = "${var.name}-fanout" })
}

resource "aws_lambda_event_source_mapping" "fanout" {
  event_source_arn = aws_sqs_queue.fanout.arn
  function_name    = aws_lambda_function.this["fanout"].arn

  # One job (one page) per invocation: pages are posted by parallel invocations.
  batch_size              = 1
  function_response_types = ["ReportBatchItemFailures"]

  scaling_config {
    maximum_concurrency = var.fanout_maximum_concurrency
  }

  tags = merge(var.tags, { Name = "${var.name}-fanout" })
}

################################################################################
# Recursive loop detection
#
# fanout queues each next page and each retry on the queue that invokes it: a
# broadcast to a topic of more than about 16 pages is one chain of 16+
# invocations, which Lambda's recursive loop detection stops by default
# (Lambda Developer Guide, "Use Lambda recursive loop detection to prevent
# infinite loops"). The chain ends by construction (the last page queues no
# next one; a retry is given up after delivery_max_attempts), so it is allowed.
################################################################################

resource "aws_lambda_function_recursion_config" "fanout" {
  function_name  = aws_lambda_function.this["fanout"].function_name
  recursive_loop = "Allow"
}
