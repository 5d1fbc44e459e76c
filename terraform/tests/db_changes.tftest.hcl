# Application-table changes as events: the db-changes function, its stream
# mappings (filtering, retries, on-failure queue), its policy, and the rule
# validation that refuses bad rules at plan time.

# Mocks and inputs shared by every test file: tests/mocks/aws.tfmock.hcl, tests/terraform.tfvars.
mock_provider "aws" {
  source = "./tests/mocks"

  # The application table behind the stream.
  mock_data "aws_dynamodb_table" {
    defaults = { name = "clinic", stream_enabled = true, stream_view_type = "NEW_AND_OLD_IMAGES" }
  }
}

variables {
  # The application table's stream, which most runs below give rules of their own.
  clinic_stream = {
    name       = "clinic"
    stream_arn = "arn:aws:dynamodb:us-east-1:123456789012:table/clinic/stream/2026-01-01T00:00:00.000"
  }

  # The telemedicine example: doctors' profiles and their patient assignments in one table.
  db_changes_sources = [{
    name       = "clinic"
    stream_arn = "arn:aws:dynamodb:us-east-1:123456789012:table/clinic/stream/2026-01-01T00:00:00.000"
    rules = [
      {
        name              = "doctor-online"
        event_type        = "doctor.online"
        when              = { attribute = "online", becomes = { BOOL = true } }
        audience          = ["presence:{doctorId}", "group:{clinicIds}"]
        list_placeholders = ["clinicIds"]
        data              = ["doctorId", "name", "specialty"]
      },
      {
        name              = "doctor-offline"
        event_type        = "doctor.offline"
        kinds             = ["MODIFY"]
        when              = { attribute = "online", becomes = { BOOL = false } }
        audience          = ["presence:{doctorId}", "group:{clinicIds}"]
        list_placeholders = ["clinicIds"]
        data              = ["doctorId", "name"]
      },
      {
        name       = "patient-assigned"
        event_type = "care.doctor_assigned"
        kinds      = ["INSERT"]
        when       = { attribute = "patientId" }
        audience   = ["user:{patientId}"]
        data       = ["doctorId", "doctorName", "patientId"]
      },
      {
        name       = "patient-unassigned"
        event_type = "care.doctor_unassigned"
        kinds      = ["REMOVE"]
        when       = { attribute = "patientId" }
        audience   = ["user:{patientId}"]
        data       = ["doctorId", "patientId"]
      },
    ]
  }]
}

################################################################################
# Function and mapping
################################################################################

run "a_source_adds_the_db_changes_function" {
  command = apply

  assert {
    condition     = aws_lambda_function.this["db-changes"].handler == "realtime.handlers.db_changes.handler" && aws_lambda_function.this["db-changes"].function_name == "rt-test-db-changes"
    error_message = "A source must add the db-changes function (realtime.handlers.db_changes.handler)."
  }

  assert {
    condition = (
      keys(aws_lambda_function.this["db-changes"].environment[0].variables) == tolist(["DB_CHANGE_SOURCES", "EVENTS_QUEUE_URL", "FAILURES_QUEUE_URL", "MAX_TOPICS_PER_RECORD", "POWERTOOLS_LOG_LEVEL", "POWERTOOLS_METRICS_NAMESPACE", "POWERTOOLS_SERVICE_NAME", "POWERTOOLS_TRACE_DISABLED"]) &&
      aws_lambda_function.this["db-changes"].environment[0].variables["EVENTS_QUEUE_URL"] == aws_sqs_queue.events.url &&
      aws_lambda_function.this["db-changes"].environment[0].variables["FAILURES_QUEUE_URL"] == aws_sqs_queue.dead_letter["db-changes-failures"].url &&
      aws_lambda_function.this["db-changes"].environment[0].variables["MAX_TOPICS_PER_RECORD"] == "100"
    )
    error_message = "db-changes gets exactly its rules, the events queue it publishes to, the failures queue for the records it refuses and the per-record topic cap (default 100), besides the Powertools variables."
  }

  assert {
    condition = jsondecode(aws_lambda_function.this["db-changes"].environment[0].variables["DB_CHANGE_SOURCES"]) == [{
      name       = "clinic"
      stream_arn = "arn:aws:dynamodb:us-east-1:123456789012:table/clinic/stream/2026-01-01T00:00:00.000"
      rules = [
        {
          name              = "doctor-online"
          event_type        = "doctor.online"
          kinds             = ["INSERT", "MODIFY"]
          when              = { attribute = "online", becomes = { S = null, N = null, BOOL = true } }
          audience          = ["presence:{doctorId}", "group:{clinicIds}"]
          list_placeholders = ["clinicIds"]
          data              = ["doctorId", "name", "specialty"]
        },
        {
          name              = "doctor-offline"
          event_type        = "doctor.offline"
          kinds             = ["MODIFY"]
          when              = { attribute = "online", becomes = { S = null, N = null, BOOL = false } }
          audience          = ["presence:{doctorId}", "group:{clinicIds}"]
          list_placeholders = ["clinicIds"]
          data              = ["doctorId", "name"]
        },
        {
          name              = "patient-assigned"
          event_type        = "care.doctor_assigned"
          kinds             = ["INSERT"]
          when              = { attribute = "patientId", becomes = null }
          audience          = ["user:{patientId}"]
          list_placeholders = []
          data              = ["doctorId", "doctorName", "patientId"]
        },
        {
          name              = "patient-unassigned"
          event_type        = "care.doctor_unassigned"
          kinds             = ["REMOVE"]
          when              = { attribute = "patientId", becomes = null }
          audience          = ["user:{patientId}"]
          list_placeholders = []
          data              = ["doctorId", "patientId"]
        },
      ]
    }]
    error_message = "DB_CHANGE_SOURCES must carry each source's stream ARN and its rules, default kinds filled in."
  }

  assert {
    condition     = aws_cloudwatch_log_group.lambda["db-changes"].name == "/aws/lambda/rt-test-db-changes" && aws_lambda_function.this["db-changes"].logging_config[0].log_group == "/aws/lambda/rt-test-db-changes"
    error_message = "db-changes joins the module's functions with its own log group."
  }
}

run "the_mapping_filters_bisects_retries_and_has_a_destination" {
  command = apply

  assert {
    condition = (
      aws_lambda_event_source_mapping.db_changes["clinic"].event_source_arn == "arn:aws:dynamodb:us-east-1:123456789012:table/clinic/stream/2026-01-01T00:00:00.000" &&
      aws_lambda_event_source_mapping.db_changes["clinic"].function_name == aws_lambda_function.this["db-changes"].arn &&
      aws_lambda_event_source_mapping.db_changes["clinic"].starting_position == "LATEST"
    )
    error_message = "The mapping must read the source's stream into db-changes, from LATEST by default."
  }

  assert {
    condition = toset(aws_lambda_event_source_mapping.db_changes["clinic"].filter_criteria[0].filter[*].pattern) == toset([
      jsonencode({ eventName = ["INSERT", "REMOVE"] }),
      jsonencode({ eventName = ["MODIFY"], dynamodb = { NewImage = { online = { BOOL = [true] } } } }),
      jsonencode({ eventName = ["MODIFY"], dynamodb = { NewImage = { online = { BOOL = [false] } } } }),
    ])
    error_message = "The filter must let through the kinds of attribute-change rules, and for 'becomes' rules only records whose NewImage has the value (INSERT already passes the first pattern)."
  }

  assert {
    condition = (
      aws_lambda_event_source_mapping.db_changes["clinic"].bisect_batch_on_function_error &&
      aws_lambda_event_source_mapping.db_changes["clinic"].maximum_retry_attempts == 10 &&
      aws_lambda_event_source_mapping.db_changes["clinic"].maximum_record_age_in_seconds == 3600 &&
      aws_lambda_event_source_mapping.db_changes["clinic"].function_response_types == toset(["ReportBatchItemFailures"])
    )
    error_message = "The mapping must bisect failing batches, retry a bounded number of times and report failed records one by one."
  }

  assert {
    condition     = aws_lambda_event_source_mapping.db_changes["clinic"].destination_config[0].on_failure[0].destination_arn == aws_sqs_queue.dead_letter["db-changes-failures"].arn
    error_message = "Records given up on must go to the on-failure queue."
  }

  assert {
    condition = (
      aws_lambda_event_source_mapping.db_changes["clinic"].batch_size == 100 &&
      aws_lambda_event_source_mapping.db_changes["clinic"].maximum_batching_window_in_seconds == 0 &&
      aws_lambda_event_source_mapping.db_changes["clinic"].parallelization_factor == 1
    )
    error_message = "The mapping defaults are batch 100, no batching window, parallelization 1."
  }
}

run "mapping_options_are_inputs" {
  command = plan

  variables {
    db_changes_sources = [merge(var.clinic_stream, {
      rules                              = [{ name = "any", event_type = "clinic.changed", audience = ["all"] }]
      starting_position                  = "TRIM_HORIZON"
      batch_size                         = 500
      maximum_batching_window_in_seconds = 5
      parallelization_factor             = 4
      maximum_retry_attempts             = 3
      maximum_record_age_in_seconds      = 600
    })]
  }

  assert {
    condition = (
      aws_lambda_event_source_mapping.db_changes["clinic"].starting_position == "TRIM_HORIZON" &&
      aws_lambda_event_source_mapping.db_changes["clinic"].batch_size == 500 &&
      aws_lambda_event_source_mapping.db_changes["clinic"].maximum_batching_window_in_seconds == 5 &&
      aws_lambda_event_source_mapping.db_changes["clinic"].parallelization_factor == 4 &&
      aws_lambda_event_source_mapping.db_changes["clinic"].maximum_retry_attempts == 3 &&
      aws_lambda_event_source_mapping.db_changes["clinic"].maximum_record_age_in_seconds == 600
    )
    error_message = "Every mapping option must come from the source."
  }

  assert {
    condition     = toset(aws_lambda_event_source_mapping.db_changes["clinic"].filter_criteria[0].filter[*].pattern) == toset([jsonencode({ eventName = ["INSERT", "MODIFY", "REMOVE"] })])
    error_message = "A rule on any change of any kind filters on the change kind only."
  }
}

run "past_five_patterns_the_filter_keeps_only_the_kinds" {
  command = plan

  variables {
    db_changes_sources = [{
      name       = "orders"
      stream_arn = "arn:aws:dynamodb:us-east-1:123456789012:table/orders/stream/2026-01-01T00:00:00.000"
      rules = [for status in ["placed", "paid", "packed", "shipped", "delivered", "returned"] : {
        name       = "order-${status}"
        event_type = "order.${status}"
        kinds      = ["MODIFY"]
        when       = { attribute = "status", becomes = { S = status } }
        audience   = ["user:{customerId}"]
      }]
    }]
  }

  assert {
    condition     = toset(aws_lambda_event_source_mapping.db_changes["orders"].filter_criteria[0].filter[*].pattern) == toset([jsonencode({ eventName = ["MODIFY"] })])
    error_message = "Six 'becomes' patterns exceed Lambda's five filters: the mapping must fall back to the change kinds."
  }
}

run "number_values_filter_on_the_type_only" {
  command = plan

  variables {
    db_changes_sources = [{
      name       = "queue"
      stream_arn = "arn:aws:dynamodb:us-east-1:123456789012:table/queue/stream/2026-01-01T00:00:00.000"
      rules = [{
        name       = "first-in-line"
        event_type = "queue.your_turn"
        when       = { attribute = "position", becomes = { N = "1" } }
        audience   = ["user:{patientId}"]
      }]
    }]
  }

  assert {
    condition = toset(aws_lambda_event_source_mapping.db_changes["queue"].filter_criteria[0].filter[*].pattern) == toset([
      jsonencode({ eventName = ["INSERT", "MODIFY"], dynamodb = { NewImage = { position = { N = [{ exists = true }] } } } })
    ])
    error_message = "Numbers are text in stream records (\"1\" or \"1.0\"): the filter asks for a number and the function compares."
  }
}

################################################################################
# Failure queue and alarm
################################################################################

run "the_failure_queue_is_encrypted_tls_only_and_alarmed" {
  command = apply

  variables {
    alarm_actions = ["arn:aws:sns:us-east-1:123456789012:ops"]
  }

  assert {
    condition     = aws_sqs_queue.dead_letter["db-changes-failures"].sqs_managed_sse_enabled && aws_sqs_queue.dead_letter["db-changes-failures"].message_retention_seconds == 1209600
    error_message = "The on-failure queue must be encrypted and keep messages 14 days."
  }

  assert {
    condition = (
      jsondecode(aws_sqs_queue_policy.this["db-changes-failures"].policy).Statement[0].Effect == "Deny" &&
      jsondecode(aws_sqs_queue_policy.this["db-changes-failures"].policy).Statement[0].Condition.Bool["aws:SecureTransport"] == "false"
    )
    error_message = "The on-failure queue must refuse access without TLS."
  }

  assert {
    condition = (
      aws_cloudwatch_metric_alarm.this["db-changes-failures"].metric_name == "ApproximateNumberOfMessagesVisible" &&
      aws_cloudwatch_metric_alarm.this["db-changes-failures"].dimensions.QueueName == "rt-test-db-changes-failures" &&
      aws_cloudwatch_metric_alarm.this["db-changes-failures"].threshold == 0 &&
      aws_cloudwatch_metric_alarm.this["db-changes-failures"].alarm_actions == toset(["arn:aws:sns:us-east-1:123456789012:ops"])
    )
    error_message = "Any message on the on-failure queue must raise the alarm."
  }

  assert {
    condition     = output.db_changes_failures_queue_arn == aws_sqs_queue.dead_letter["db-changes-failures"].arn && length(output.db_changes_filter_patterns["clinic"]) == 3
    error_message = "The outputs expose the on-failure queue and the generated filters."
  }
}

################################################################################
# Least privilege
################################################################################

run "the_function_policy_is_narrow" {
  command = apply

  assert {
    condition = toset(flatten([for s in jsondecode(aws_iam_role_policy.lambda["db-changes"].policy).Statement : s.Action if s.Sid != "WriteOwnLogs"])) == toset([
      "dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator", "dynamodb:ListStreams", "sqs:SendMessage",
    ])
    error_message = "db-changes may only read its streams and send messages."
  }

  assert {
    condition = flatten([for s in jsondecode(aws_iam_role_policy.lambda["db-changes"].policy).Statement : s.Resource if contains(s.Action, "dynamodb:GetRecords")]) == [
      "arn:aws:dynamodb:us-east-1:123456789012:table/clinic/stream/2026-01-01T00:00:00.000"
    ]
    error_message = "Stream reads are limited to the given stream ARNs (not the table, not *)."
  }

  assert {
    condition = toset(flatten([for s in jsondecode(aws_iam_role_policy.lambda["db-changes"].policy).Statement : s.Resource if contains(s.Action, "sqs:SendMessage")])) == toset([
      "arn:aws:sqs:us-east-1:123456789012:rt-test-events", "arn:aws:sqs:us-east-1:123456789012:rt-test-db-changes-failures",
    ])
    error_message = "db-changes may send only to the events queue and to its on-failure queue."
  }

  assert {
    condition = alltrue(flatten([for s in jsondecode(aws_iam_role_policy.lambda["db-changes"].policy).Statement :
      [for r in s.Resource : r != "*" && !endswith(r, ":*") || s.Sid == "WriteOwnLogs"]
    ]))
    error_message = "No wildcard resources in the db-changes policy."
  }

  assert {
    condition     = alltrue(flatten([for s in jsondecode(aws_iam_role_policy.lambda["db-changes"].policy).Statement : [for a in s.Action : !strcontains(a, "*")]]))
    error_message = "No wildcard actions in the db-changes policy."
  }

  assert {
    condition = alltrue([for k, p in aws_iam_role_policy.lambda :
      !contains(flatten([for s in jsondecode(p.policy).Statement : s.Action]), "dynamodb:GetRecords") || k == "db-changes"
    ])
    error_message = "Only db-changes reads application-table streams."
  }
}

run "kms_keys_add_only_what_encryption_needs" {
  command = apply

  variables {
    kms_key_arn = "arn:aws:kms:us-east-1:123456789012:key/11111111-1111-1111-1111-111111111111"
    db_changes_sources = [merge(var.clinic_stream, {
      table_kms_key_arn = "arn:aws:kms:us-east-1:123456789012:key/22222222-2222-2222-2222-222222222222"
      rules             = [{ name = "any", event_type = "clinic.changed", audience = ["all"] }]
    })]
  }

  assert {
    condition = toset([for s in jsondecode(aws_iam_role_policy.lambda["db-changes"].policy).Statement : "${s.Sid}=${join(",", s.Action)}=${join(",", s.Resource)}" if startswith(s.Action[0], "kms:")]) == toset([
      "EncryptedQueues=kms:GenerateDataKey=arn:aws:kms:us-east-1:123456789012:key/11111111-1111-1111-1111-111111111111",
      "DecryptWithModuleKey=kms:Decrypt=arn:aws:kms:us-east-1:123456789012:key/11111111-1111-1111-1111-111111111111",
      "DecryptApplicationTableStreams=kms:Decrypt=arn:aws:kms:us-east-1:123456789012:key/22222222-2222-2222-2222-222222222222",
    ])
    error_message = "With keys, db-changes may encrypt for the queues and decrypt the table's stream, and nothing more."
  }

  assert {
    condition     = aws_sqs_queue.dead_letter["db-changes-failures"].kms_master_key_id == "arn:aws:kms:us-east-1:123456789012:key/11111111-1111-1111-1111-111111111111"
    error_message = "The on-failure queue uses the module's key when given."
  }
}

run "no_sources_no_function" {
  command = plan

  variables {
    db_changes_sources = []
  }

  assert {
    condition     = !contains(keys(aws_lambda_function.this), "db-changes") && length(aws_lambda_event_source_mapping.db_changes) == 0 && !contains(keys(aws_sqs_queue.dead_letter), "db-changes-failures")
    error_message = "Without sources there is no db-changes function, mapping or queue."
  }
}

################################################################################
# Stream view type, checked against the table
################################################################################

run "a_stream_without_old_images_is_refused" {
  command = plan

  override_data {
    target = data.aws_dynamodb_table.db_changes
    values = { name = "clinic", stream_enabled = true, stream_view_type = "NEW_IMAGE" }
  }

  expect_failures = [aws_lambda_event_source_mapping.db_changes]
}

run "new_images_are_enough_for_rules_on_inserts" {
  command = plan

  override_data {
    target = data.aws_dynamodb_table.db_changes
    values = { name = "clinic", stream_enabled = true, stream_view_type = "NEW_IMAGE" }
  }

  variables {
    db_changes_sources = [merge(var.clinic_stream, {
      rules = [{ name = "new-doctor", event_type = "doctor.joined", kinds = ["INSERT"], audience = ["group:{clinicId}"] }]
    })]
  }

  assert {
    condition     = length(aws_lambda_event_source_mapping.db_changes) == 1
    error_message = "A NEW_IMAGE stream serves rules that read only new images."
  }
}

################################################################################
# Bad rules fail the plan
################################################################################

run "bad_event_type_is_refused" {
  command = plan

  variables {
    db_changes_sources = [merge(var.clinic_stream, {
      rules = [{ name = "doctor-online", event_type = "Doctor Online", audience = ["all"] }]
    })]
  }

  expect_failures = [var.db_changes_sources]
}

run "becomes_needs_exactly_one_value" {
  command = plan

  variables {
    db_changes_sources = [merge(var.clinic_stream, {
      rules = [{
        name       = "doctor-online"
        event_type = "doctor.online"
        when       = { attribute = "online", becomes = { BOOL = true, S = "yes" } }
        audience   = ["all"]
      }]
    })]
  }

  expect_failures = [var.db_changes_sources]
}

run "becomes_cannot_fire_on_remove" {
  command = plan

  variables {
    db_changes_sources = [merge(var.clinic_stream, {
      rules = [{
        name       = "doctor-online"
        event_type = "doctor.online"
        kinds      = ["MODIFY", "REMOVE"]
        when       = { attribute = "online", becomes = { BOOL = true } }
        audience   = ["all"]
      }]
    })]
  }

  expect_failures = [var.db_changes_sources]
}

run "unknown_change_kind_is_refused" {
  command = plan

  variables {
    db_changes_sources = [merge(var.clinic_stream, {
      rules = [{ name = "doctor-updated", event_type = "doctor.updated", kinds = ["UPDATE"], audience = ["all"] }]
    })]
  }

  expect_failures = [var.db_changes_sources]
}

run "audience_template_must_form_a_topic" {
  command = plan

  variables {
    db_changes_sources = [merge(var.clinic_stream, {
      rules = [{ name = "doctor-online", event_type = "doctor.online", audience = ["doctor:{doctorId}"] }]
    })]
  }

  expect_failures = [var.db_changes_sources]
}

run "rule_names_are_unique_within_a_source" {
  command = plan

  variables {
    db_changes_sources = [merge(var.clinic_stream, {
      rules = [
        { name = "doctor", event_type = "doctor.online", audience = ["all"] },
        { name = "doctor", event_type = "doctor.offline", audience = ["all"] },
      ]
    })]
  }

  expect_failures = [var.db_changes_sources]
}

run "stream_arn_must_be_a_stream" {
  command = plan

  variables {
    db_changes_sources = [{
      name       = "clinic"
      stream_arn = "arn:aws:dynamodb:us-east-1:123456789012:table/clinic"
      rules      = [{ name = "any", event_type = "clinic.changed", audience = ["all"] }]
    }]
  }

  expect_failures = [var.db_changes_sources]
}

run "retries_must_be_bounded" {
  command = plan

  variables {
    db_changes_sources = [merge(var.clinic_stream, {
      rules                  = [{ name = "any", event_type = "clinic.changed", audience = ["all"] }]
      maximum_retry_attempts = -1
    })]
  }

  expect_failures = [var.db_changes_sources]
}

run "rules_must_fit_the_lambda_environment" {
  command = plan

  variables {
    db_changes_sources = [merge(var.clinic_stream, {
      rules = [for i in range(40) : {
        name       = "rule-${i}"
        event_type = "clinic.changed"
        audience   = ["group:{clinicId}"]
        data       = ["doctorId", "patientId", "clinicId", "status"]
      }]
    })]
  }

  expect_failures = [var.db_changes_sources]
}


run "the_topic_cap_is_an_input" {
  command = plan

  variables {
    db_changes_max_topics_per_record = 500
  }

  assert {
    condition     = aws_lambda_function.this["db-changes"].environment[0].variables["MAX_TOPICS_PER_RECORD"] == "500"
    error_message = "db_changes_max_topics_per_record must reach the function as MAX_TOPICS_PER_RECORD."
  }
}

