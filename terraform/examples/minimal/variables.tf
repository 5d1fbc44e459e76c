variable "token_secret_ssm_parameter_name" {
  description = "Existing SSM SecureString parameter holding the HS256 token secret."
  type        = string
  default     = "/realtime/token-secret"
}

variable "create_api_gateway_cloudwatch_role" {
  description = "Create API Gateway's account-level CloudWatch Logs role (false if the account already has one)."
  type        = bool
  default     = true
}
