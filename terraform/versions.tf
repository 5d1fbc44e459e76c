terraform {
  # 1.9 is the first release whose variable validations may refer to other objects
  # (the SQS visibility-timeout and batching rules, the topic pattern).
  required_version = ">= 1.9"
  required_providers {
    aws = { source = "hashicorp/aws", version = ">= 5.80" }
  }
}
