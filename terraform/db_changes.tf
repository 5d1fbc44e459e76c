################################################################################
# Database changes: application-table streams -> db-changes -> events queue
#
# One db-changes function reads every stream in var.db_changes_sources (one
# event source mapping each) and turns item changes into producer messages by
# the rules (realtime.db_changes.rules); process-events stores and
# delivers them like any other event.
################################################################################

locals {
  db_changes_enabled = length(var.db_changes_sources) > 0
  db_changes_sources = { for s in var.db_changes_sources : s.name => s }

  # The rules as the function reads them (DB_CHANGE_SOURCES), with the default kinds filled in.
  db_changes_rules = {
    for name, s in local.db_changes_sources : name => [for r in s.rules : {
      name       = r.name
      event_type = r.event_type
      kinds = (
        r.kinds != null ? r.kinds
        : try(r.when.becomes, null) != null ? ["INSERT", "MODIFY"] : ["INSERT", "MODIFY", "REMOVE"]
      )
      when              = r.when
      audience          = r.audience
      list_placeholders = r.list_placeholders
      data              = r.data
    }]
  }

  ################################################################################
  # Lambda event filtering: only records some rule may fire on invoke the function
  ################################################################################

  # Kinds of the rules that fire on any change, or on any change of an attribute (a filter cannot compare images).
  db_changes_plain_kinds = {
    for name, rules in local.db_changes_rules : name => sort(distinct(flatten([
      for r in rules : r.kinds if try(r.when.becomes, null) == null
    ])))
  }

  # "becomes" rules need their new value in the NewImage (the function then checks the old one). Kinds already let
  # through by the plain pattern are left out, and a pattern with nothing left is dropped.
  db_changes_value_patterns = {
    for name, rules in local.db_changes_rules : name => distinct([
      for r in rules : jsonencode({
        eventName = sort(setsubtract(r.kinds, local.db_changes_plain_kinds[name]))
        dynamodb = {
          NewImage = {
            (r.when.attribute) = jsondecode(
              r.when.becomes.BOOL != null ? jsonencode({ BOOL = [r.when.becomes.BOOL] })
              : r.when.becomes.S != null ? jsonencode({ S = [r.when.becomes.S] })
              # Numbers travel as text ("5" or "5.0"), so the filter only asks for a number; the function compares.
              : jsonencode({ N = [{ exists = true }] })
            )
          }
        }
      }) if try(r.when.becomes, null) != null && length(setsubtract(r.kinds, local.db_changes_plain_kinds[name])) > 0
    ])
  }

  # Lambda allows 5 filters per mapping by default: past that, filter on the change kind alone (still correct).
  db_changes_filter_patterns = {
    for name, rules in local.db_changes_rules : name => (
    length(local.db_changes_plain_kinds[name]) > 0 ? 1 : 0) + length(local.db_changes_value_patterns[name]) <= 5
    ? concat(
      length(local.db_changes_plain_kinds[name]) > 0 ? [jsonencode({ eventName = local.db_changes_plain_kinds[name] })] : [],
      local.db_changes_value_patterns[name],
    )
    : [jsonencode({ eventName = sort(distinct(flatten(rules[*].kinds))) })]
  }

  ################################################################################
  # Stream view type each source's rules need
  ################################################################################

  db_changes_stream_view_types = {
    for name, rules in local.db_changes_rules : name => (
      anytrue([for r in rules : r.when != null && contains(r.kinds, "MODIFY")]) || (
        anytrue([for r in rules : contains(r.kinds, "REMOVE")]) &&
        anytrue([for r in rules : contains(r.kinds, "INSERT") || contains(r.kinds, "MODIFY")])
      ) ? ["NEW_AND_OLD_IMAGES"]
      : anytrue([for r in rules : contains(r.kinds, "REMOVE")]) ? ["OLD_IMAGE", "NEW_AND_OLD_IMAGES"]
      : ["NEW_IMAGE", "NEW_AND_OLD_IMAGES"]
    )
  }

  ################################################################################
  # The db-changes function, and its on-failure queue
  ################################################################################

  db_changes_table_kms_key_arns = distinct([
    for s in var.db_changes_sources : s.table_kms_key_arn if s.table_kms_key_arn != null && s.table_kms_key_arn != var.kms_key_arn
  ])

  # DB_CHANGE_SOURCES: the rules as the function reads them.
  db_changes_sources_json = jsonencode([for name, s in local.db_changes_sources : {
    name       = name
    stream_arn = s.stream_arn
    rules      = local.db_changes_rules[name]
  }])

  db_changes_functions = local.db_changes_enabled ? {
    "db-changes" = {
      description = "Application-table stream consumer: turns item changes into events by the db_changes rules"
      handler     = "realtime.handlers.db_changes.handler"
      memory_size = var.db_changes_memory_size
      timeout     = var.db_changes_timeout
      environment = {
        EVENTS_QUEUE_URL      = aws_sqs_queue.events.url
        DB_CHANGE_SOURCES     = local.db_changes_sources_json
        FAILURES_QUEUE_URL    = aws_sqs_queue.dead_letter["db-changes-failures"].url
        MAX_TOPICS_PER_RECORD = tostring(var.db_changes_max_topics_per_record)
      }
      statements = concat(
        [
          {
            # What the event source mapping needs to read the streams (it runs with the function's role).
            sid       = "ReadApplicationTableStreams"
            actions   = ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator", "dynamodb:ListStreams"]
            resources = [for s in var.db_changes_sources : s.stream_arn]
          },
          {
            sid       = "PublishToEventsQueue"
            actions   = ["sqs:SendMessage"]
            resources = [aws_sqs_queue.events.arn]
          },
          {
            # The mapping sends the pointers of records it gave up on, with the function's role; the function
            # itself sends those it refuses (too many topics), with their reason.
            sid       = "SendToFailureQueue"
            actions   = ["sqs:SendMessage"]
            resources = [aws_sqs_queue.dead_letter["db-changes-failures"].arn]
          },
        ],
        local.encrypted_queues_statements,
        length(local.db_changes_table_kms_key_arns) == 0 ? [] : [{
          sid       = "DecryptApplicationTableStreams"
          actions   = ["kms:Decrypt"]
          resources = local.db_changes_table_kms_key_arns
        }],
      )
    }
  } : {}

  # The module's own queues => the functions that send to them (queues.tf refuses every other sender): the
  # stream mappings send the records they gave up on with db-changes' role, the function those it refuses.
  db_changes_queue_sending_functions = local.db_changes_enabled ? { "db-changes-failures" = ["db-changes"] } : {}

  # The stream mappings' on-failure destination: a dead-letter queue written to by the mappings and the function.
  db_changes_dead_letter_queues = local.db_changes_enabled ? {
    "db-changes-failures" = {
      alarm   = "db-changes-failures"
      meaning = "Application-table changes that gave no event: refused by the rules (too many topics; errorCode and errorReason attributes) or failed after every retry. The messages point to their stream records, which are kept for 24 h."
    }
  } : {}
}

################################################################################
# The tables behind the streams, to check their stream view type at plan time
################################################################################

data "aws_dynamodb_table" "db_changes" {
  for_each = local.db_changes_sources

  # arn:<partition>:dynamodb:<region>:<account>:table/<name>/stream/<label>
  name = split("/", each.value.stream_arn)[1]
}

################################################################################
# db-changes <- application-table streams
################################################################################

resource "aws_lambda_event_source_mapping" "db_changes" {
  for_each = local.db_changes_sources

  event_source_arn  = each.value.stream_arn
  function_name     = aws_lambda_function.this["db-changes"].arn
  starting_position = each.value.starting_position

  batch_size                         = each.value.batch_size
  maximum_batching_window_in_seconds = each.value.maximum_batching_window_in_seconds
  parallelization_factor             = each.value.parallelization_factor

  # One bad record must neither block its shard for long nor take its neighbours down with it.
  function_response_types        = ["ReportBatchItemFailures"]
  bisect_batch_on_function_error = true
  maximum_retry_attempts         = each.value.maximum_retry_attempts
  maximum_record_age_in_seconds  = each.value.maximum_record_age_in_seconds

  destination_config {
    on_failure {
      destination_arn = aws_sqs_queue.dead_letter["db-changes-failures"].arn
    }
  }

  filter_criteria {
    dynamic "filter" {
      for_each = local.db_changes_filter_patterns[each.key]

      content {
        pattern = filter.value
      }
    }
  }

  tags = merge(var.tags, { Name = "${var.name}-db-changes-${each.key}" })

  lifecycle {
    precondition {
      condition = (
        data.aws_dynamodb_table.db_changes[each.key].stream_enabled &&
        contains(local.db_changes_stream_view_types[each.key], coalesce(data.aws_dynamodb_table.db_changes[each.key].stream_view_type, "none"))
      )
      error_message = "The stream of table ${data.aws_dynamodb_table.db_changes[each.key].name} (db_changes source ${each.key}) has view type ${coalesce(data.aws_dynamodb_table.db_changes[each.key].stream_view_type, "none")}, but its rules need ${join(" or ", local.db_changes_stream_view_types[each.key])}: set the table's stream_view_type to ${local.db_changes_stream_view_types[each.key][0]}."
    }
  }
}
