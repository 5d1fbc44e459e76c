################################################################################
# Functions: one per entry of local.functions, which the feature files declare
# (local.<feature>_functions); each gets its own log group, role and inline
# least-privilege policy, and shares the one code zip and dependencies layer
################################################################################

locals {
  # Function key => description, handler, environment (its own variables), sections (the sections of its
  # settings model in realtime.core.settings, by field name: token, presence), statements (what it may touch
  # besides its own logs), and memory_size, timeout and reserved_concurrency where they are not
  # lambda_memory_size, lambda_timeout and none (-1: unreserved).
  functions = { for k, f in merge(
    local.connections_functions, # ws-connect, ws-disconnect
    local.events_functions,      # process-events
    local.fanout_functions,      # fanout
    local.http_functions,        # events-api
    local.maintenance_functions, # maintenance
    local.presence_functions,    # presence-checks, with presence only
    local.db_changes_functions,  # db-changes, with db_changes_sources only
  ) : k => merge({ memory_size = var.lambda_memory_size, timeout = var.lambda_timeout, reserved_concurrency = -1, sections = {} }, f) }

  function_names = { for k in keys(local.functions) : k => "${var.name}-${k}" }

  # In jwks mode, the functions that verify tokens also get the JWKS layer (cryptography); nothing else loads it.
  jwks_layer_functions = var.token.mode == "jwks" ? toset([for k, f in local.functions : k if contains(keys(f.sections), "token")]) : toset([])

  common_environment = {
    POWERTOOLS_SERVICE_NAME      = var.name
    POWERTOOLS_METRICS_NAMESPACE = var.metrics_namespace
    POWERTOOLS_LOG_LEVEL         = var.log_level
    # realtime.core.observability starts Powertools Tracer only when this is "false".
    POWERTOOLS_TRACE_DISABLED = var.lambda_tracing_mode == null ? "true" : "false"
  }

  # Each function's environment (docs/internals.md says what each variable means). A null value leaves the
  # variable out: token settings that are not set, and the presence section when presence_enabled is false.
  function_environment = {
    for k, f in local.functions : k => merge(local.common_environment, f.environment, values(f.sections)...)
  }
}

################################################################################
# Log groups (created before the functions, so Lambda never creates unmanaged ones)
################################################################################

resource "aws_cloudwatch_log_group" "lambda" {
  #checkov:skip=CKV_AWS_338:Retention is the log_retention_in_days input (default 30 days): these are operational logs, not an audit trail; keep them longer by setting the input.

  for_each = local.function_names

  name              = "/aws/lambda/${each.value}"
  retention_in_days = var.log_retention_in_days
  kms_key_id        = var.kms_key_arn

  tags = merge(var.tags, { Name = "/aws/lambda/${each.value}" })
}

################################################################################
# IAM: one role and one inline policy per function
################################################################################

resource "aws_iam_role" "lambda" {
  for_each = local.function_names

  name        = each.value
  description = "Execution role of the ${each.value} Lambda function"

  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "LambdaAssumeRole"
      Effect    = "Allow"
      Principal = { Service = "lambda.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })

  tags = merge(var.tags, { Name = each.value })
}

locals {
  # The full statement list of each function's inline policy: its own log
  # group, what the function touches (its statements), and the module's KMS
  # key for its encrypted environment variables.
  lambda_policy_statements = {
    for k in keys(local.functions) : k => concat(
      [{
        sid       = "WriteOwnLogs"
        actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
        resources = ["${aws_cloudwatch_log_group.lambda[k].arn}:*"]
      }],
      local.functions[k].statements,
      var.kms_key_arn == null ? [] : [{
        sid       = "DecryptWithModuleKey"
        actions   = ["kms:Decrypt"]
        resources = [var.kms_key_arn]
      }],
    )
  }
}

resource "aws_iam_role_policy" "lambda" {
  for_each = local.function_names

  name = "${each.value}-least-privilege"
  role = aws_iam_role.lambda[each.key].id

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [for s in local.lambda_policy_statements[each.key] : {
      Sid      = s.sid
      Effect   = "Allow"
      Action   = s.actions
      Resource = s.resources
    }]
  })
}

resource "aws_iam_role_policy_attachment" "xray" {
  for_each = var.lambda_tracing_mode == "Active" ? local.function_names : {}

  role       = aws_iam_role.lambda[each.key].name
  policy_arn = "arn:${local.partition}:iam::aws:policy/AWSXRayDaemonWriteAccess"
}

################################################################################
# Dependencies layers: the shared one, and in jwks mode cryptography for the token verifiers
################################################################################

resource "aws_lambda_layer_version" "this" {
  layer_name  = "${var.name}-dependencies"
  description = "Python dependencies of the ${var.name} functions"

  filename         = var.lambda_layer_zip
  source_code_hash = filebase64sha256(var.lambda_layer_zip)

  compatible_runtimes      = ["python3.12"]
  compatible_architectures = [var.lambda_architecture]
}

resource "aws_lambda_layer_version" "jwks" {
  count = var.token.mode == "jwks" ? 1 : 0

  layer_name  = "${var.name}-jwks"
  description = "cryptography for the ${var.name} functions that verify JWKS-signed tokens"

  filename         = var.lambda_jwks_layer_zip
  source_code_hash = filebase64sha256(var.lambda_jwks_layer_zip)

  compatible_runtimes      = ["python3.12"]
  compatible_architectures = [var.lambda_architecture]
}

################################################################################
# Functions
################################################################################

resource "aws_lambda_function" "this" {
  for_each = local.functions

  #checkov:skip=CKV_AWS_50:X-Ray tracing is opt-in through the lambda_tracing_mode input.
  #checkov:skip=CKV_AWS_115:Concurrency is bounded by the SQS mapping's maximum_concurrency (process-events), by events_api_reserved_concurrency when set, and by the API stages' throttling (all others); reserving more would only take capacity from the account.
  #checkov:skip=CKV_AWS_116:No asynchronous invocations: API Gateway invokes synchronously, and process-events failures go to the events queue's own DLQ through its redrive policy.
  #checkov:skip=CKV_AWS_117:The functions call only AWS APIs (DynamoDB, SQS, SSM, API Gateway); a VPC would add NAT or endpoints with no security gain.
  #checkov:skip=CKV_AWS_173:Environment variables hold no secrets and are encrypted with the AWS managed key; a customer managed key is used when kms_key_arn is set.
  #checkov:skip=CKV_AWS_272:Code signing is not used: the zips are built deterministically by the project's build script and hashed by Terraform.

  function_name = local.function_names[each.key]
  description   = each.value.description
  role          = aws_iam_role.lambda[each.key].arn

  runtime       = "python3.12"
  handler       = each.value.handler
  architectures = [var.lambda_architecture]
  memory_size   = each.value.memory_size
  timeout       = each.value.timeout

  reserved_concurrent_executions = each.value.reserved_concurrency

  filename         = var.lambda_code_zip
  source_code_hash = filebase64sha256(var.lambda_code_zip)
  layers           = concat([aws_lambda_layer_version.this.arn], contains(local.jwks_layer_functions, each.key) ? aws_lambda_layer_version.jwks[*].arn : [])

  kms_key_arn = var.kms_key_arn

  environment {
    variables = { for k, v in local.function_environment[each.key] : k => v if v != null }
  }

  logging_config {
    log_format            = "JSON"
    log_group             = aws_cloudwatch_log_group.lambda[each.key].name
    application_log_level = var.log_level
    system_log_level      = "WARN"
  }

  dynamic "tracing_config" {
    for_each = var.lambda_tracing_mode == null ? [] : [var.lambda_tracing_mode]

    content {
      mode = tracing_config.value
    }
  }

  tags = merge(var.tags, { Name = local.function_names[each.key] })

  depends_on = [
    aws_cloudwatch_log_group.lambda,
    aws_iam_role_policy.lambda,
    aws_iam_role_policy_attachment.xray,
  ]
}
