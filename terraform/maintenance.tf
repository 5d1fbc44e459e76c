################################################################################
# maintenance: runs on an EventBridge Scheduler schedule to remove connections
# whose $disconnect was missed (API Gateway sends it best-effort) and, with
# presence, to repair presence. The function and its permissions are in main.tf
# and presence.tf.
################################################################################

resource "aws_iam_role" "maintenance_scheduler" {
  name        = "${var.name}-maintenance-scheduler"
  description = "Lets EventBridge Scheduler invoke ${local.function_names["maintenance"]}"

  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "SchedulerAssumeRole"
      Effect    = "Allow"
      Principal = { Service = "scheduler.amazonaws.com" }
      Action    = "sts:AssumeRole"
      # Only schedules of this account (confused-deputy protection).
      Condition = { StringEquals = { "aws:SourceAccount" = local.account_id } }
    }]
  })

  tags = merge(var.tags, { Name = "${var.name}-maintenance-scheduler" })
}

resource "aws_iam_role_policy" "maintenance_scheduler" {
  name = "${var.name}-maintenance-scheduler-invoke"
  role = aws_iam_role.maintenance_scheduler.id

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid      = "InvokeMaintenance"
      Effect   = "Allow"
      Action   = ["lambda:InvokeFunction"]
      Resource = [aws_lambda_function.this["maintenance"].arn]
    }]
  })
}

resource "aws_scheduler_schedule" "maintenance" {
  name        = "${var.name}-maintenance"
  description = "Runs ${local.function_names["maintenance"]}: missed $disconnects, presence repair"

  schedule_expression = var.maintenance_schedule_expression
  state               = "ENABLED"
  kms_key_arn         = var.kms_key_arn

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = aws_lambda_function.this["maintenance"].arn
    role_arn = aws_iam_role.maintenance_scheduler.arn
    input    = jsonencode({ source = "schedule" })

    # Runs are idempotent and the next one is minutes away: no point retrying an old one.
    retry_policy {
      maximum_retry_attempts       = 0
      maximum_event_age_in_seconds = 60
    }
  }
}
