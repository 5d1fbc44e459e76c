variable "endpoint" {
  description = "Base URL of the AWS emulator every service is called on: ministack (e.g. http://127.0.0.1:4566) or LocalStack (e.g. http://localhost.localstack.cloud:4566)."
  type        = string
  default     = "http://127.0.0.1:4566"

  validation {
    condition     = can(regex("^http://[^/]+$", var.endpoint))
    error_message = "The endpoint must be http://host:port with no path or trailing slash."
  }
}

variable "websocket_management_endpoint" {
  description = "Template of the emulator's @connections endpoint, with {api_id} and {stage} placeholders. Null (default) is ministack's: <endpoint>/_aws/execute-api/{api_id}/{stage}. LocalStack (paid tier): http://{api_id}.execute-api.localhost.localstack.cloud:4566/{stage}."
  type        = string
  default     = null
}

variable "name" {
  description = "Name prefix of the local stack."
  type        = string
  default     = "rt-local"
}

variable "lambda_code_zip" {
  description = "Path to the functions zip built for the host (e.g. dist/x86_64/functions.zip)."
  type        = string
}

variable "lambda_layer_zip" {
  description = "Path to the dependencies layer zip built for the host (e.g. dist/x86_64/layer.zip)."
  type        = string
}

variable "lambda_architecture" {
  description = "Architecture recorded on the functions. The emulator runs the zips on the host, so build them for the host."
  type        = string
  default     = "x86_64"
}

variable "dev_token_secret" {
  description = "HS256 secret of the local stack's tokens. For the emulator only: never use this default anywhere real."
  type        = string
  default     = "local-dev-only-secret-do-not-use-in-production"
  sensitive   = true
}

variable "demo_port" {
  description = "Port of the demo page on 127.0.0.1 (scripts/local/demo_server.py): the HTTP API allows its origin (CORS)."
  type        = number
  default     = 8765
}
