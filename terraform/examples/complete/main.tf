# Region and credentials come from the environment (AWS_REGION, AWS_PROFILE, ...).
provider "aws" {}

data "aws_caller_identity" "current" {}

data "aws_region" "current" {}

data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name

  tags = {
    Example     = "complete"
    Application = var.name
  }
}

################################################################################
# One customer managed key for the stack and the application table
################################################################################

resource "aws_kms_key" "this" {
  description             = "${var.name}: realtime events, their queues, logs and the clinic table"
  enable_key_rotation     = true
  deletion_window_in_days = 30

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        # IAM policies of this account decide who may use the key (the module grants its functions).
        Sid       = "AccountAdministersTheKey"
        Effect    = "Allow"
        Principal = { AWS = "arn:${local.partition}:iam::${local.account_id}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
      {
        Sid       = "CloudWatchLogsEncryptsLogGroups"
        Effect    = "Allow"
        Principal = { Service = "logs.${local.region}.amazonaws.com" }
        Action    = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
        Resource  = "*"
        Condition = {
          ArnLike = { "kms:EncryptionContext:aws:logs:arn" = "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:*" }
        }
      },
      {
        # Alarms publish to the encrypted SNS topic.
        Sid       = "CloudWatchAlarmsPublish"
        Effect    = "Allow"
        Principal = { Service = "cloudwatch.amazonaws.com" }
        Action    = ["kms:Decrypt", "kms:GenerateDataKey*"]
        Resource  = "*"
        Condition = { StringEquals = { "aws:SourceAccount" = local.account_id } }
      },
    ]
  })

  tags = local.tags
}

resource "aws_kms_alias" "this" {
  name          = "alias/${var.name}"
  target_key_id = aws_kms_key.this.key_id
}

################################################################################
# The application's table: doctors and their patients (single-table design)
#
#   doctor profile: pk = doctor#<doctorId>, sk = profile
#                   doctorId, name, specialty, clinicIds (string set), online (bool), phone, ...
#   assignment:     pk = doctor#<doctorId>, sk = patient#<patientId>
#                   doctorId, doctorName, patientId, assignedAt
#
# The application flips `online` when a doctor starts or ends a shift and
# writes or deletes assignments. It never publishes events itself: the rules
# below turn these changes into events.
################################################################################

resource "aws_dynamodb_table" "clinic" {
  name         = "${var.name}-clinic"
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "pk"
  range_key    = "sk"

  attribute {
    name = "pk"
    type = "S"
  }

  attribute {
    name = "sk"
    type = "S"
  }

  # The rules compare `online` before and after a change and read removed assignments: both images.
  stream_enabled   = true
  stream_view_type = "NEW_AND_OLD_IMAGES"

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.this.arn
  }

  deletion_protection_enabled = true

  tags = local.tags
}

################################################################################
# Alarm notifications
################################################################################

resource "aws_sns_topic" "alarms" {
  name              = "${var.name}-alarms"
  kms_master_key_id = aws_kms_key.this.arn

  tags = local.tags
}

resource "aws_sns_topic_subscription" "alarm_email" {
  count = var.alarm_email == null ? 0 : 1

  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = var.alarm_email
}

################################################################################
# Realtime events and presence, with the clinic table's changes as events
################################################################################

module "realtime" {
  source = "../.."

  name             = var.name
  lambda_code_zip  = "${path.module}/../../../dist/arm64/functions.zip"
  lambda_layer_zip = "${path.module}/../../../dist/arm64/layer.zip"
  kms_key_arn      = aws_kms_key.this.arn

  # Patients' tokens carry `topics = ["presence:<doctorId>", ...]` for the doctors assigned to them;
  # clinic staff tokens carry `groups = ["<clinicId>"]`.
  token = {
    secret_ssm_parameter_name = var.token_secret_ssm_parameter_name
    issuer                    = var.token_issuer
    audience                  = var.token_audience
  }

  db_changes_sources = [{
    name              = "clinic"
    stream_arn        = aws_dynamodb_table.clinic.stream_arn
    table_kms_key_arn = aws_kms_key.this.arn

    # A shift change is rare and latency matters more than batching.
    batch_size                         = 100
    maximum_batching_window_in_seconds = 0
    maximum_retry_attempts             = 10
    maximum_record_age_in_seconds      = 3600

    rules = [
      {
        # A doctor starting a shift: their patients (watching presence:<doctorId>) and their clinics' staff.
        name              = "doctor-online"
        event_type        = "doctor.online"
        kinds             = ["INSERT", "MODIFY"]
        when              = { attribute = "online", becomes = { BOOL = true } }
        audience          = ["presence:{doctorId}", "group:{clinicIds}"]
        list_placeholders = ["clinicIds"] # a string set: one topic per clinic
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
        # Only assignment items have a patientId, so doctor profiles never fire these two.
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

  alarm_actions = [aws_sns_topic.alarms.arn]
  ok_actions    = [aws_sns_topic.alarms.arn]

  # WebSocket stage access logs need API Gateway's account-level CloudWatch
  # role. Set to false if the account and region already have one.
  create_api_gateway_cloudwatch_role = var.create_api_gateway_cloudwatch_role

  tags = local.tags
}
