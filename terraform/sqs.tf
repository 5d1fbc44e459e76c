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
# Dead-letter queues: what a consumer gave up on waits there, alarmed
################################################################################

locals {
  # Queue (its name after "<name>-") => its alarm (monitoring.tf) and what the messages in it mean.
  dead_letter_queues = merge(
    {
      "events-dlq" = {
        alarm   = "events-dlq-not-empty"
        meaning = "Events could not be processed; see their errorCode/errorReason attributes."
      }
      "fanout-dlq" = {
        alarm   = "fanout-dlq-not-empty"
        meaning = "Fan-out jobs failed repeatedly (a page could not be read, or a job not queued): those connections missed the event until their clients catch up over HTTP."
      }
    },
    var.presence_enabled ? {
      "presence-checks-dlq" = {
        alarm   = "presence-checks-dlq-not-empty"
        meaning = "Offline checks failed repeatedly; maintenance decides those users' presence."
      }
      "presence-events-dlq" = {
        alarm   = "presence-events-dlq-not-empty"
        meaning = "Presence events could not be stored; watchers read presence with GET /presence."
      }
    } : {},
    local.db_changes_enabled ? {
      # The stream mappings' on-failure destination (db_changes.tf).
      "db-changes-failures" = {
        alarm   = "db-changes-failures"
        meaning = "Application-table changes that gave no event: refused by the rules (too many topics; errorCode and errorReason attributes) or failed after every retry. The messages point to their stream records, which are kept for 24 h."
      }
    } : {},
  )

  # Dead-letter queue => the queue that redrives to it (the others are written to by their consumers).
  redrive_sources = merge(
    { "events-dlq" = aws_sqs_queue.events.arn, "fanout-dlq" = aws_sqs_queue.fanout.arn },
    var.presence_enabled ? {
      "presence-checks-dlq" = aws_sqs_queue.presence_checks[0].arn
      "presence-events-dlq" = aws_sqs_queue.presence_events[0].arn
    } : {},
  )
}

resource "aws_sqs_queue" "dead_letter" {
  for_each = local.dead_letter_queues

  name = "${var.name}-${each.key}"

  message_retention_seconds = 1209600 # 14 days, the maximum
  receive_wait_time_seconds = 20

  sqs_managed_sse_enabled           = var.kms_key_arn == null ? true : null
  kms_master_key_id                 = var.kms_key_arn
  kms_data_key_reuse_period_seconds = var.kms_key_arn == null ? null : 300

  tags = merge(var.tags, { Name = "${var.name}-${each.key}" })
}

# Only its own source queue may use a dead-letter queue. A separate resource,
# because the source queue's redrive policy already refers to the dead-letter queue.
resource "aws_sqs_queue_redrive_allow_policy" "this" {
  for_each = local.redrive_sources

  queue_url = aws_sqs_queue.dead_letter[each.key].id

  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [each.value]
  })
}

################################################################################
# Queue policies: refuse any access that is not over TLS, on every queue; on the
# events queue, with events_queue_publisher_arns, refuse SendMessage to anyone else
################################################################################

locals {
  # Every queue, keyed by its name without the "<name>-" prefix.
  queues = merge(
    { "events" = aws_sqs_queue.events, "fanout" = aws_sqs_queue.fanout },
    { for q in aws_sqs_queue.presence_checks : "presence-checks" => q },
    { for q in aws_sqs_queue.presence_events : "presence-events" => q },
    aws_sqs_queue.dead_letter,
  )
}

locals {
  # Who may send to the events queue besides the listed publishers: the module's own functions
  # (table changes; each role's own policy still says which queue it may use).
  events_queue_senders = concat(var.events_queue_publisher_arns, sort(distinct([for r in aws_iam_role.lambda : r.arn])))
  # Who may send to the presence-events queue: the functions that announce presence, and no one else.
  presence_events_senders = sort(distinct([for k, r in aws_iam_role.lambda : r.arn if contains(local.presence_announcers, k)]))
}

resource "aws_sqs_queue_policy" "this" {
  for_each = local.queues

  queue_url = each.value.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = concat(
      [{
        Sid       = "DenyInsecureTransport"
        Effect    = "Deny"
        Principal = "*"
        Action    = "sqs:*"
        Resource  = each.value.arn
        Condition = { Bool = { "aws:SecureTransport" = "false" } }
      }],
      each.key == "events" && length(var.events_queue_publisher_arns) > 0 ? [{
        # Any principal of the account with sqs:SendMessage on "*" could otherwise publish to `all`.
        Sid       = "OnlyListedPublishers"
        Effect    = "Deny"
        Principal = "*"
        Action    = "sqs:SendMessage"
        Resource  = each.value.arn
        Condition = { ArnNotLike = { "aws:PrincipalArn" = local.events_queue_senders } }
      }] : [],
      each.key == "presence-events" ? [{
        # Its records are trusted as the module's own: no one else may send one.
        Sid       = "OnlyPresenceAnnouncers"
        Effect    = "Deny"
        Principal = "*"
        Action    = "sqs:SendMessage"
        Resource  = each.value.arn
        Condition = { ArnNotLike = { "aws:PrincipalArn" = local.presence_events_senders } }
      }] : [],
    )
  })
}
