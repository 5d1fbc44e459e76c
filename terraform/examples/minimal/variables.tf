variable "token_secret_ssm_parameter_name" {
  description = "Existing SSM SecureString parameter holding the HS256 token secret."
  type        = string
  default     = "/realtime/token-secret"
}

variable "token_issuer" {
  description = "The `iss` your application's tokens carry (e.g. https://auth.example.com/); other issuers' tokens are refused."
  type        = string
}

variable "token_audience" {
  description = "The `aud` your application's tokens carry for this service (e.g. realtime); tokens for other audiences are refused."
  type        = string
}

variable "app_origins" {
  description = "Origins of the web app whose pages use the HTTP fallback (e.g. [\"https://app.example.com\"]): browsers refuse its answers to any other origin (CORS)."
  type        = list(string)
}

variable "create_api_gateway_cloudwatch_role" {
  description = "Create API Gateway's account-level CloudWatch Logs role (false if the account already has one)."
  type        = bool
  default     = true
}
