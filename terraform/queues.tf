################################################################################
# Queues: the dead-letter queues the features declare, and one policy on every
# queue (each feature's queues are in its own file)
################################################################################

locals {
  # Queue (its name after "<name>-") => its alarm (monitoring.tf) and what the messages in it mean.
  dead_letter_queues = merge(
    local.events_dead_letter_queues,
    local.fanout_dead_letter_queues,
    local.presence_dead_letter_queues,
    local.db_changes_dead_letter_queues,
  )

  # Dead-letter queue => the queue that redrives to it (the others are written to by their consumers).
  redrive_sources = merge(local.events_redrive_sources, local.fanout_redrive_sources, local.presence_redrive_sources)

  # Every queue, keyed by its name without the "<name>-" prefix.
  queues = merge(local.events_queues, local.fanout_queues, local.presence_queues, aws_sqs_queue.dead_letter)

  # Queue => what its policy says besides refusing insecure transport.
  queue_policy_statements = merge(local.events_queue_policy_statements, local.presence_queue_policy_statements)
}

################################################################################
# Dead-letter queues: what a consumer gave up on waits there, alarmed
################################################################################

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
# Queue policies: refuse any access that is not over TLS, on every queue; the
# features add their own refusals (local.queue_policy_statements)
################################################################################

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
      contains(keys(local.queue_policy_statements), each.key) ? local.queue_policy_statements[each.key] : [],
    )
  })
}
