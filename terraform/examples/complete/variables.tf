variable "name" {
  description = "Name prefix of every resource."
  type        = string
  default     = "telemed"
}

variable "token_secret_ssm_parameter_name" {
  description = "Existing SSM SecureString parameter holding the HS256 token secret (create it outside Terraform)."
  type        = string
  default     = "/telemed/token-secret"
}

variable "token_issuer" {
  description = "The `iss` your application's tokens carry (e.g. https://auth.example.com/); other issuers' tokens are refused."
  type        = string
}

variable "token_audience" {
  description = "The `aud` your application's tokens carry for this service (e.g. realtime); tokens for other audiences are refused."
  type        = string
}

variable "create_api_gateway_cloudwatch_role" {
  description = "Create API Gateway's account-level CloudWatch Logs role (false if the account already has one)."
  type        = bool
  default     = true
}

variable "alarm_email" {
  description = "Email address subscribed to the alarms topic (null: no subscription)."
  type        = string
  default     = null
}
