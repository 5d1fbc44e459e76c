# Region and credentials come from the environment (AWS_REGION, AWS_PROFILE, ...).
provider "aws" {}

# The smallest useful deployment: HS256 tokens whose secret already exists as
# an SSM SecureString parameter (create it outside Terraform, e.g.
#   aws ssm put-parameter --type SecureString --name /realtime/token-secret --value "$(openssl rand -base64 48)"
# ), functions built for arm64 by the project's build script.
module "realtime" {
  source = "../.."

  name             = "realtime"
  lambda_code_zip  = "${path.module}/../../../dist/arm64/functions.zip"
  lambda_layer_zip = "${path.module}/../../../dist/arm64/layer.zip"

  token = {
    secret_ssm_parameter_name = var.token_secret_ssm_parameter_name
    issuer                    = var.token_issuer
    audience                  = var.token_audience
  }

  # The browser client reads GET /events from the app's pages when the socket cannot open:
  # without the app's origin here, the browser refuses every answer.
  cors_allow_origins = var.app_origins

  # WebSocket stage access logs need API Gateway's account-level CloudWatch
  # role. Set to false if the account and region already have one.
  create_api_gateway_cloudwatch_role = var.create_api_gateway_cloudwatch_role
}
