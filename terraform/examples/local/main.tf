# The whole stack on a local AWS emulator: ministack (`make up`, the integration
# tests) or LocalStack (docs/environments.md). Credentials are the emulator's dummies.
provider "aws" {
  region     = "us-east-1"
  access_key = "test"
  secret_key = "test"

  skip_credentials_validation = true
  skip_metadata_api_check     = true
  skip_region_validation      = true
  skip_requesting_account_id  = false # the emulator answers sts:GetCallerIdentity
  s3_use_path_style           = true

  endpoints {
    apigateway     = var.endpoint
    apigatewayv2   = var.endpoint
    cloudwatch     = var.endpoint
    dynamodb       = var.endpoint
    events         = var.endpoint
    iam            = var.endpoint
    kms            = var.endpoint
    lambda         = var.endpoint
    logs           = var.endpoint
    s3             = var.endpoint
    scheduler      = var.endpoint
    secretsmanager = var.endpoint
    sqs            = var.endpoint
    ssm            = var.endpoint
    sts            = var.endpoint
  }
}

data "aws_region" "current" {}

# The dev HS256 secret, as an SSM SecureString. FOR THE EMULATOR ONLY: on AWS,
# create the secret outside Terraform so it never lands in state.
resource "aws_ssm_parameter" "token_secret" {
  #checkov:skip=CKV_AWS_337:Local emulator only; the parameter uses the default aws/ssm key there.

  name        = "/${var.name}/token-secret"
  description = "HS256 secret of the local stack's tokens (emulator only)"
  type        = "SecureString"
  value       = var.dev_token_secret
}

module "realtime" {
  source = "../.."

  name                = var.name
  lambda_code_zip     = var.lambda_code_zip
  lambda_layer_zip    = var.lambda_layer_zip
  lambda_architecture = var.lambda_architecture
  log_level           = "DEBUG"

  # scripts/local/mint_token.py mints the local stack's tokens with this issuer and audience.
  token = {
    secret_ssm_parameter_name = aws_ssm_parameter.token_secret.name
    issuer                    = "realtime-local"
    audience                  = "realtime-local"
  }

  # ministack's @connections API lives under its own path, not on a
  # {api}.execute-api host; LocalStack's has a host of its own (variables.tf).
  websocket_management_endpoint    = coalesce(var.websocket_management_endpoint, "${var.endpoint}/_aws/execute-api/{api_id}/{stage}")
  allow_custom_management_endpoint = true # an emulator's plain-http host, not API Gateway's

  # The emulator enforces no account quota: posts go as fast as the functions make them, so the benchmarks
  # measure the code rather than the post budget (its pacing is unit-tested). Emulator only: on AWS keep the
  # default, which is derived from the account's quota.
  delivery_posts_per_second = 100000

  event_type_rules = [
    { type = "announcement*", audience = ["all"] },
    { type = "order.*", audience = ["user:{data.userId}"] },
  ]

  # The demo page (scripts/local/demo_server.py) reads events over HTTP from its own origin.
  cors_allow_origins = ["http://127.0.0.1:${var.demo_port}", "http://localhost:${var.demo_port}"]

  # Presence events also reach the user's groups (the module's default grace period, 5 s, is kept).
  group_presence_enabled = true

  # Changes of the application's clinic table become events (clinic.tf).
  db_changes_sources = local.clinic_db_changes_sources

  tags = {
    Environment = "local"
  }
}
