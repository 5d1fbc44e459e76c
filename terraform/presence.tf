################################################################################
# Presence (presence_enabled, default true)
#
# Per-user state in the presence table (hash key userId; see docs/internals.md).
# $connect/$disconnect/ping and delivery update it; the last session's end
# schedules an offline check on the presence-checks queue, delayed by the grace
# period, consumed by presence-checks. maintenance repairs presence on its
# schedule. Presence events go to their own queue, which only the functions
# that announce presence may send to; process-events consumes it with the
# events queue and trusts only its records with the presence types and ids, so
# producers can neither forge nor suppress presence.
#
# Besides its own resources, presence gives the other functions a presence
# section of settings (local.presence_environment) and permissions
# (local.presence_statements): both empty when presence is off.
################################################################################

locals {
  presence_checks_timeout = 30
  # Offline checks are small and late by a grace period anyway: a few at once suffice.
  presence_checks_maximum_concurrency = 5

  # What the functions are told of presence: all null when presence is off, which leaves the variables out.
  presence = var.presence_enabled ? {
    table            = aws_dynamodb_table.this["presence"].name
    table_arn        = aws_dynamodb_table.this["presence"].arn
    checks_queue_url = aws_sqs_queue.presence_checks[0].url
    checks_queue_arn = aws_sqs_queue.presence_checks[0].arn
    grace_seconds    = tostring(var.presence_grace_period_seconds)
    events_queue_url = aws_sqs_queue.presence_events[0].url
    events_queue_arn = aws_sqs_queue.presence_events[0].arn
    group_enabled    = tostring(var.group_presence_enabled)
    max_users        = tostring(var.max_presence_users_per_request)
  } : { for k in ["table", "table_arn", "checks_queue_url", "checks_queue_arn", "grace_seconds", "events_queue_url", "events_queue_arn", "group_enabled", "max_users"] : k => null }

  ################################################################################
  # The presence sections of the functions' settings, as realtime.core.settings
  # names them: each function takes the one its settings model reads
  ################################################################################

  presence_table_environment = { PRESENCE_TABLE = local.presence.table }
  announcing_presence_environment = {
    PRESENCE_EVENTS_QUEUE_URL = local.presence.events_queue_url
    GROUP_PRESENCE_ENABLED    = local.presence.group_enabled
  }
  ending_sessions_environment = {
    PRESENCE_CHECKS_QUEUE_URL = local.presence.checks_queue_url
    PRESENCE_GRACE_SECONDS    = local.presence.grace_seconds
  }

  presence_environment = {
    announcing_presence = merge(local.presence_table_environment, local.announcing_presence_environment)
    ending_sessions     = merge(local.presence_table_environment, local.ending_sessions_environment)
    storing_presence = merge(local.presence_table_environment, local.ending_sessions_environment, {
      PRESENCE_EVENTS_QUEUE_URL = local.presence.events_queue_url
      PRESENCE_EVENTS_QUEUE_ARN = local.presence.events_queue_arn
    })
    repairing_presence = merge(local.presence_table_environment, local.ending_sessions_environment, local.announcing_presence_environment)
    reading_presence   = merge(local.presence_table_environment, { MAX_PRESENCE_USERS = local.presence.max_users })
  }

  ################################################################################
  # What presence lets each function do: nothing when presence is off
  ################################################################################

  # The functions that announce presence: the only senders the presence-events queue accepts.
  presence_announcers = ["ws-connect", "presence-checks", "maintenance"]

  presence_statements = { for k, statements in {
    "ws-connect"    = concat([local.presence_table_statement["ws-connect"], local.publish_presence_events_statement], local.presence_kms_statements)
    "ws-disconnect" = concat([local.presence_table_statement["ws-disconnect"], local.schedule_offline_checks_statement], local.presence_kms_statements)
    "process-events" = [
      local.presence_table_statement["process-events"],
      local.schedule_offline_checks_statement,
      {
        sid       = "ConsumePresenceEvents"
        actions   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ChangeMessageVisibility"]
        resources = [local.presence.events_queue_arn]
      },
    ]
    "fanout"     = [local.presence_table_statement["fanout"], local.schedule_offline_checks_statement]
    "events-api" = [local.presence_table_statement["events-api"]]
    "presence-checks" = concat(
      [
        {
          sid       = "ConsumePresenceChecks"
          actions   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ChangeMessageVisibility"]
          resources = [local.presence.checks_queue_arn]
        },
        local.presence_table_statement["presence-checks"],
        local.publish_presence_events_statement,
      ],
      local.presence_kms_statements,
    )
    "maintenance" = concat(
      [
        {
          # Sessions whose connection record is gone.
          sid       = "FindOrphanSessions"
          actions   = ["dynamodb:BatchGetItem"]
          resources = [aws_dynamodb_table.this["connections"].arn]
        },
        local.presence_table_statement["maintenance"],
        local.schedule_offline_checks_statement,
        local.publish_presence_events_statement,
      ],
      local.presence_kms_statements,
    )
  } : k => var.presence_enabled ? statements : [] }

  presence_table_statement = {
    for k, actions in {
      "ws-connect"      = ["dynamodb:UpdateItem", "dynamodb:GetItem"] # GetItem: why a connect was refused
      "ws-disconnect"   = ["dynamodb:UpdateItem"]
      "process-events"  = ["dynamodb:UpdateItem"]
      "fanout"          = ["dynamodb:UpdateItem"]
      "events-api"      = ["dynamodb:BatchGetItem"]
      "presence-checks" = ["dynamodb:UpdateItem", "dynamodb:GetItem"]
      "maintenance"     = ["dynamodb:Scan", "dynamodb:UpdateItem", "dynamodb:GetItem"]
      } : k => {
      sid       = "PresenceTable"
      actions   = actions
      resources = [local.presence.table_arn]
    }
  }

  schedule_offline_checks_statement = {
    sid       = "ScheduleOfflineChecks"
    actions   = ["sqs:SendMessage"]
    resources = [local.presence.checks_queue_arn]
  }

  publish_presence_events_statement = {
    sid       = "PublishPresenceEvents"
    actions   = ["sqs:SendMessage"]
    resources = [local.presence.events_queue_arn]
  }

  # Sending to (or receiving from) a queue encrypted with the module's key; kms:Decrypt comes with every function.
  presence_kms_statements = var.kms_key_arn == null ? [] : [{
    sid       = "EncryptedPresenceQueues"
    actions   = ["kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
  }]

  ################################################################################
  # Presence's own table, queues, function and alarms
  ################################################################################

  # One item per user; never expires: a user's version must only grow.
  presence_tables = var.presence_enabled ? {
    presence = { hash_key = "userId", range_key = null, attributes = { userId = "S" }, expires = false }
  } : {}

  presence_queues = merge(
    { for q in aws_sqs_queue.presence_checks : "presence-checks" => q },
    { for q in aws_sqs_queue.presence_events : "presence-events" => q },
  )
  presence_redrive_sources = var.presence_enabled ? {
    "presence-checks-dlq" = aws_sqs_queue.presence_checks[0].arn
    "presence-events-dlq" = aws_sqs_queue.presence_events[0].arn
  } : {}
  presence_dead_letter_queues = var.presence_enabled ? {
    "presence-checks-dlq" = {
      alarm   = "presence-checks-dlq-not-empty"
      meaning = "Offline checks failed repeatedly; maintenance decides those users' presence."
    }
    "presence-events-dlq" = {
      alarm   = "presence-events-dlq-not-empty"
      meaning = "Presence events could not be stored; watchers read presence with GET /presence."
    }
  } : {}

  # The module's own queues => the functions that send to them (queues.tf refuses every other sender). The
  # presence-events queue's records are trusted as the module's own: only the announcers may send one. The
  # DLQs get their messages from SQS itself, after maxReceiveCount: no function sends to them.
  presence_queue_sending_functions = var.presence_enabled ? {
    "presence-checks"     = ["ws-disconnect", "process-events", "fanout", "maintenance"] # local.schedule_offline_checks_statement
    "presence-checks-dlq" = []
    "presence-events"     = local.presence_announcers
    "presence-events-dlq" = []
  } : {}

  presence_functions = var.presence_enabled ? {
    "presence-checks" = {
      description = "Delayed offline checks: marks a user offline when the grace period passed without a new session"
      handler     = "realtime.handlers.presence_checks.handler"
      timeout     = local.presence_checks_timeout
      environment = {}
      sections    = { presence = local.presence_environment.announcing_presence }
      statements  = local.presence_statements["presence-checks"]
    }
  } : {}

  presence_queued_work = var.presence_enabled ? { "presence-events" = "Presence events" } : {}
  # Function => the most concurrent executions its mapping starts: near it, offline checks wait in their queue.
  presence_concurrency_ceilings = var.presence_enabled ? { "presence-checks" = local.presence_checks_maximum_concurrency } : {}
}

################################################################################
# Offline checks: a delay queue (the grace period), consumed by presence-checks
################################################################################

resource "aws_sqs_queue" "presence_checks" {
  count = var.presence_enabled ? 1 : 0

  name = "${var.name}-presence-checks"

  # Every check waits the grace period (the functions also set DelaySeconds on each message).
  delay_seconds              = var.presence_grace_period_seconds
  visibility_timeout_seconds = 6 * local.presence_checks_timeout
  message_retention_seconds  = 86400 # a check older than a day is decided by maintenance anyway
  receive_wait_time_seconds  = 20

  sqs_managed_sse_enabled           = var.kms_key_arn == null ? true : null
  kms_master_key_id                 = var.kms_key_arn
  kms_data_key_reuse_period_seconds = var.kms_key_arn == null ? null : 300

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dead_letter["presence-checks-dlq"].arn
    maxReceiveCount     = 5
  })

  tags = merge(var.tags, { Name = "${var.name}-presence-checks" })
}

resource "aws_lambda_event_source_mapping" "presence_checks" {
  count = var.presence_enabled ? 1 : 0

  event_source_arn = aws_sqs_queue.presence_checks[0].arn
  function_name    = aws_lambda_function.this["presence-checks"].arn

  batch_size                         = 10
  maximum_batching_window_in_seconds = 0 # the grace period is the only wait
  function_response_types            = ["ReportBatchItemFailures"]

  scaling_config {
    maximum_concurrency = local.presence_checks_maximum_concurrency
  }

  tags = merge(var.tags, { Name = "${var.name}-presence-checks" })
}

################################################################################
# Presence events: the module's own queue into process-events (one of
# process-events' mappings)
################################################################################

resource "aws_sqs_queue" "presence_events" {
  count = var.presence_enabled ? 1 : 0

  name = "${var.name}-presence-events"

  visibility_timeout_seconds = local.events_queue_visibility_timeout
  message_retention_seconds  = var.events_queue_message_retention_seconds
  receive_wait_time_seconds  = 20

  sqs_managed_sse_enabled           = var.kms_key_arn == null ? true : null
  kms_master_key_id                 = var.kms_key_arn
  kms_data_key_reuse_period_seconds = var.kms_key_arn == null ? null : 300

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dead_letter["presence-events-dlq"].arn
    maxReceiveCount     = var.events_queue_max_receive_count
  })

  tags = merge(var.tags, { Name = "${var.name}-presence-events" })
}
