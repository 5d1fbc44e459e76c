# The module's own queues (every queue but the producers' events queue) take
# messages only from the functions that send to them and from the operators
# (queue_operator_arns): issue 20, findings 1 (forged fan-out jobs) and 2 (the
# presence-events DLQ as a back door). Each policy is parsed and compared with
# the function policies, so a function that starts sending to a queue without
# being let in fails here, not in production.

# Mocks and inputs shared by every test file: tests/mocks/aws.tfmock.hcl, tests/terraform.tfvars.
mock_provider "aws" {
  source = "./tests/mocks"

  # db-changes' application table, so that its on-failure queue exists.
  mock_data "aws_dynamodb_table" {
    defaults = { name = "clinic", stream_enabled = true, stream_view_type = "NEW_AND_OLD_IMAGES" }
  }
}

# Distinct ARNs for every role and for the fan-out queues (the shared mocks give them one each).
override_resource {
  target = aws_iam_role.lambda["ws-connect"]
  values = { arn = "arn:aws:iam::123456789012:role/rt-test-ws-connect" }
}
override_resource {
  target = aws_iam_role.lambda["ws-disconnect"]
  values = { arn = "arn:aws:iam::123456789012:role/rt-test-ws-disconnect" }
}
override_resource {
  target = aws_iam_role.lambda["process-events"]
  values = { arn = "arn:aws:iam::123456789012:role/rt-test-process-events" }
}
override_resource {
  target = aws_iam_role.lambda["fanout"]
  values = { arn = "arn:aws:iam::123456789012:role/rt-test-fanout" }
}
override_resource {
  target = aws_iam_role.lambda["events-api"]
  values = { arn = "arn:aws:iam::123456789012:role/rt-test-events-api" }
}
override_resource {
  target = aws_iam_role.lambda["maintenance"]
  values = { arn = "arn:aws:iam::123456789012:role/rt-test-maintenance" }
}
override_resource {
  target = aws_iam_role.lambda["presence-checks"]
  values = { arn = "arn:aws:iam::123456789012:role/rt-test-presence-checks" }
}
override_resource {
  target = aws_iam_role.lambda["db-changes"]
  values = { arn = "arn:aws:iam::123456789012:role/rt-test-db-changes" }
}
override_resource {
  target = aws_sqs_queue.fanout
  values = {
    arn = "arn:aws:sqs:us-east-1:123456789012:rt-test-fanout"
    url = "https://sqs.us-east-1.amazonaws.com/123456789012/rt-test-fanout"
  }
}
override_resource {
  target = aws_sqs_queue.dead_letter["fanout-dlq"]
  values = {
    arn = "arn:aws:sqs:us-east-1:123456789012:rt-test-fanout-dlq"
    url = "https://sqs.us-east-1.amazonaws.com/123456789012/rt-test-fanout-dlq"
  }
}

variables {
  db_changes_sources = [{
    name       = "clinic"
    stream_arn = "arn:aws:dynamodb:us-east-1:123456789012:table/clinic/stream/2026-01-01T00:00:00.000"
    rules      = [{ name = "patient-assigned", event_type = "care.doctor_assigned", audience = ["user:{patientId}"] }]
  }]

  # The module's own queues, keyed as aws_sqs_queue_policy.this is.
  own_queues = ["events-dlq", "fanout", "fanout-dlq", "presence-checks", "presence-checks-dlq", "presence-events", "presence-events-dlq", "db-changes-failures"]
}

run "own_queues_refuse_every_sender_but_their_functions_and_the_operators" {
  command = apply

  variables {
    queue_operator_arns = ["arn:aws:iam::123456789012:role/ops-redrive", "arn:aws:iam::123456789012:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_Admin_*"]
  }

  assert {
    condition     = sort([for k, p in aws_sqs_queue_policy.this : k if anytrue([for s in jsondecode(p.policy).Statement : s.Sid == "OnlyOwnSenders"])]) == sort(var.own_queues)
    error_message = "Every queue of the module but the producers' events queue (which keeps events_queue_publisher_arns) refuses unknown senders."
  }

  assert {
    condition = alltrue([for q in var.own_queues : length([for s in jsondecode(aws_sqs_queue_policy.this[q].policy).Statement : s if
      s.Sid == "OnlyOwnSenders" && s.Effect == "Deny" && s.Principal == "*" && s.Action == "sqs:SendMessage" &&
      s.Resource == jsondecode(aws_sqs_queue_policy.this[q].policy).Statement[0].Resource
    ]) == 1])
    error_message = "The refusal is an explicit Deny of sqs:SendMessage to every principal (\"*\") on the queue itself, so no IAM policy, however broad, outweighs it."
  }

  assert {
    condition = jsonencode({
      for q in var.own_queues : q => [for s in jsondecode(aws_sqs_queue_policy.this[q].policy).Statement : s.Condition.ArnNotLike["aws:PrincipalArn"] if s.Sid == "OnlyOwnSenders"][0]
      }) == jsonencode({
      "events-dlq"          = sort(concat(var.queue_operator_arns, ["arn:aws:iam::123456789012:role/rt-test-process-events"]))
      "fanout"              = sort(concat(var.queue_operator_arns, ["arn:aws:iam::123456789012:role/rt-test-fanout", "arn:aws:iam::123456789012:role/rt-test-process-events"]))
      "fanout-dlq"          = sort(var.queue_operator_arns)
      "presence-checks"     = sort(concat(var.queue_operator_arns, [for f in ["fanout", "maintenance", "process-events", "ws-disconnect"] : "arn:aws:iam::123456789012:role/rt-test-${f}"]))
      "presence-checks-dlq" = sort(var.queue_operator_arns)
      "presence-events"     = sort(concat(var.queue_operator_arns, [for f in ["maintenance", "presence-checks", "ws-connect"] : "arn:aws:iam::123456789012:role/rt-test-${f}"]))
      "presence-events-dlq" = sort(var.queue_operator_arns)
      "db-changes-failures" = sort(concat(var.queue_operator_arns, ["arn:aws:iam::123456789012:role/rt-test-db-changes"]))
    })
    error_message = "Each queue lets in exactly the roles of the functions that send to it (role ARNs: aws:PrincipalArn of an assumed-role session) and the operators; the DLQs only the operators."
  }

  assert {
    # The roles a queue lets in are exactly those whose own policy may send to it: none is refused what its
    # function needs, and none is let in without needing it.
    condition = alltrue([for q in var.own_queues : toset([for a in [for s in jsondecode(aws_sqs_queue_policy.this[q].policy).Statement : s.Condition.ArnNotLike["aws:PrincipalArn"] if s.Sid == "OnlyOwnSenders"][0] : a if !contains(var.queue_operator_arns, a)]) == toset([
      for k, p in aws_iam_role_policy.lambda : aws_iam_role.lambda[k].arn if contains(flatten([
        for s in jsondecode(p.policy).Statement : s.Resource if contains(s.Action, "sqs:SendMessage")
      ]), jsondecode(aws_sqs_queue_policy.this[q].policy).Statement[0].Resource)
    ])])
    error_message = "A queue's senders must match the function policies that allow sqs:SendMessage on it."
  }

  assert {
    condition = alltrue([for q, p in aws_sqs_queue_policy.this :
      jsondecode(p.policy).Statement[0].Sid == "DenyInsecureTransport" && jsondecode(p.policy).Statement[0].Condition.Bool["aws:SecureTransport"] == "false"
    ])
    error_message = "Every queue still refuses access without TLS."
  }

  assert {
    condition     = length(jsondecode(aws_sqs_queue_policy.this["events"].policy).Statement) == 1
    error_message = "Without events_queue_publisher_arns, the producers' events queue restricts no publisher (IAM decides), operators listed or not."
  }
}

run "without_operators_the_dlqs_refuse_every_sender" {
  command = apply

  assert {
    condition = alltrue([for q in ["fanout-dlq", "presence-checks-dlq", "presence-events-dlq"] :
      [for s in jsondecode(aws_sqs_queue_policy.this[q].policy).Statement : s if s.Sid == "OnlyOwnSenders"] == [{
        Sid       = "OnlyOwnSenders"
        Effect    = "Deny"
        Principal = "*"
        Action    = "sqs:SendMessage"
        Resource  = jsondecode(aws_sqs_queue_policy.this[q].policy).Statement[0].Resource
      }]
    ])
    error_message = "With no operator listed, a DLQ no function sends to refuses sqs:SendMessage to everyone (SQS's own moves into it are no SendMessage request)."
  }

  assert {
    condition = [for s in jsondecode(aws_sqs_queue_policy.this["fanout"].policy).Statement : s.Condition.ArnNotLike["aws:PrincipalArn"] if s.Sid == "OnlyOwnSenders"] == [[
      "arn:aws:iam::123456789012:role/rt-test-fanout",
      "arn:aws:iam::123456789012:role/rt-test-process-events",
    ]]
    error_message = "With no operator listed, the fan-out queue takes jobs from process-events and fanout only: a job forged by anyone else is refused (finding 1)."
  }

  assert {
    condition = [for s in jsondecode(aws_sqs_queue_policy.this["presence-events"].policy).Statement : s.Condition.ArnNotLike["aws:PrincipalArn"] if s.Sid == "OnlyOwnSenders"] == [[
      "arn:aws:iam::123456789012:role/rt-test-maintenance",
      "arn:aws:iam::123456789012:role/rt-test-presence-checks",
      "arn:aws:iam::123456789012:role/rt-test-ws-connect",
    ]]
    error_message = "The presence-events queue, whose records are trusted as the module's own, takes them from the presence announcers only (finding 2)."
  }

  assert {
    condition = alltrue([for q, p in aws_sqs_queue_redrive_allow_policy.this :
      jsondecode(p.redrive_allow_policy).redrivePermission == "byQueue" && length(jsondecode(p.redrive_allow_policy).sourceQueueArns) == 1
    ])
    error_message = "SQS moves messages into each DLQ from its own source queue only (the redrive allow policy, which the queue policy does not replace)."
  }
}

run "operators_may_redrive_into_the_events_queue_when_publishers_are_listed" {
  command = apply

  variables {
    events_queue_publisher_arns = ["arn:aws:iam::123456789012:role/shop-api"]
    queue_operator_arns         = ["arn:aws:iam::123456789012:role/ops-redrive"]
  }

  assert {
    condition = contains(
      [for s in jsondecode(aws_sqs_queue_policy.this["events"].policy).Statement : s.Condition.ArnNotLike["aws:PrincipalArn"] if s.Sid == "OnlyListedPublishers"][0],
      "arn:aws:iam::123456789012:role/ops-redrive",
    )
    error_message = "A redrive of the events DLQ sends to the events queue as the operator: with publishers listed, the events queue must accept the operators too."
  }

  assert {
    condition = !contains(
      [for s in jsondecode(aws_sqs_queue_policy.this["fanout"].policy).Statement : s.Condition.ArnNotLike["aws:PrincipalArn"] if s.Sid == "OnlyOwnSenders"][0],
      "arn:aws:iam::123456789012:role/shop-api",
    )
    error_message = "Publishers may send events, never fan-out jobs."
  }
}
