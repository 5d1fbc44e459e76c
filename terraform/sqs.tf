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
    deadLetterTargetArn = aws_sqs_queue.dlq.arn
    maxReceiveCount     = var.events_queue_max_receive_count
  })

  tags = merge(var.tags, { Name = "${var.name}-events" })
}

################################################################################
# Dead-letter queue
################################################################################

resource "aws_sqs_queue" "dlq" {
  name = "${var.name}-events-dlq"

  message_retention_seconds = 1209600 # 14 days, the maximum
  receive_wait_time_seconds = 20

  sqs_managed_sse_enabled           = var.kms_key_arn == null ? true : null
  kms_master_key_id                 = var.kms_key_arn
  kms_data_key_reuse_period_seconds = var.kms_key_arn == null ? null : 300

  tags = merge(var.tags, { Name = "${var.name}-events-dlq" })
}

# Only the events queue may use this queue as its DLQ. A separate resource,
# because the events queue's redrive policy already refers to the DLQ.
resource "aws_sqs_queue_redrive_allow_policy" "dlq" {
  queue_url = aws_sqs_queue.dlq.id

  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.events.arn]
  })
}

################################################################################
# Queue policies: refuse any access that is not over TLS, on every queue
################################################################################

# Feature files (presence.tf, db_changes.tf) add their queues the same way, keyed
# by the queue's name without the "<name>-" prefix.
locals {
  queues = merge(
    {
      "events"     = aws_sqs_queue.events
      "events-dlq" = aws_sqs_queue.dlq
    },
    local.presence_queues,
    local.db_changes_queues,
  )
}

resource "aws_sqs_queue_policy" "this" {
  for_each = local.queues

  queue_url = each.value.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "DenyInsecureTransport"
      Effect    = "Deny"
      Principal = "*"
      Action    = "sqs:*"
      Resource  = each.value.arn
      Condition = { Bool = { "aws:SecureTransport" = "false" } }
    }]
  })
}

# The policies were separate resources before; keep the deployed ones.
moved {
  from = aws_sqs_queue_policy.events
  to   = aws_sqs_queue_policy.this["events"]
}

moved {
  from = aws_sqs_queue_policy.dlq
  to   = aws_sqs_queue_policy.this["events-dlq"]
}

moved {
  from = aws_sqs_queue_policy.presence_checks["presence-checks"]
  to   = aws_sqs_queue_policy.this["presence-checks"]
}

moved {
  from = aws_sqs_queue_policy.presence_checks["presence-checks-dlq"]
  to   = aws_sqs_queue_policy.this["presence-checks-dlq"]
}

moved {
  from = aws_sqs_queue_policy.db_changes_failures[0]
  to   = aws_sqs_queue_policy.this["db-changes-failures"]
}
