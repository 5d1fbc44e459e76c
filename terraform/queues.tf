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

  # The module's own queues (every queue but the producers' events queue) => the functions that send to them.
  queue_sending_functions = merge(
    local.events_queue_sending_functions,
    local.fanout_queue_sending_functions,
    local.presence_queue_sending_functions,
    local.db_changes_queue_sending_functions,
  )

  # Who may send to each of the module's own queues: the roles of the functions that do, and the operators.
  queue_allowed_senders = {
    for q, functions in local.queue_sending_functions : q => sort(distinct(concat(
      [for f in functions : aws_iam_role.lambda[f].arn],
      var.queue_operator_arns,
    )))
  }

  # Queue => what its policy says besides refusing insecure transport: the producers' events queue its
  # publishers-only statement (events.tf), every other queue the refusal of any sender not allowed above.
  queue_policy_statements = merge(local.events_queue_policy_statements, {
    for q, senders in local.queue_allowed_senders : q => [merge(
      {
        # Its messages are trusted as the module's own. aws:PrincipalArn is the role's ARN for a function's
        # assumed-role session, so one entry covers every session of a role; an empty list refuses everyone.
        Sid       = "OnlyOwnSenders"
        Effect    = "Deny"
        Principal = "*"
        Action    = "sqs:SendMessage" # also what SendMessageBatch is authorized as
        Resource  = local.queues[q].arn
      },
      length(senders) == 0 ? {} : { Condition = { ArnNotLike = { "aws:PrincipalArn" = senders } } },
    )]
  })
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
# Queue policies: refuse any access that is not over TLS, on every queue; and
# any sender but the module's functions that send there and the operators, on
# every queue but the producers' (local.queue_policy_statements)
#
# What the refusal of other senders leaves working, per the SQS Developer Guide:
# - SQS's own move of a message to a DLQ after maxReceiveCount is not a
#   request by a principal: "Amazon SQS moves the message to the dead-letter
#   queue", gated by the DLQ's redrive allow policy (which source queues may
#   use it); no queue-policy permission is documented for it (unlike SNS or
#   EventBridge DLQs, which must allow their service), and such moves are not
#   counted in the DLQ's NumberOfMessagesSent, unlike a manual SendMessage
#   ("Using dead-letter queues in Amazon SQS", troubleshooting).
# - A redrive out of a DLQ (StartMessageMoveTask, or "Start DLQ redrive" in the
#   console) needs sqs:SendMessage on the destination queue for the principal
#   who starts it ("Configuring queue permissions for dead-letter queue
#   redrive"): SQS makes those calls on that principal's behalf, so the
#   destination queue must accept the operator (queue_operator_arns).
# - A Lambda stream mapping's on-failure destination is sent to with the
#   function's execution role (db-changes').
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
