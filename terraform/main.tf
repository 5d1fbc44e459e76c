################################################################################
# Where the module runs, and what several feature files share
#
# Each feature has a file of its own holding its resources and its fragments of
# the module's tables: its functions (local.<feature>_functions, built by
# lambda.tf), tables (tables.tf), dead-letter queues and queue policies
# (queues.tf) and alarms (monitoring.tf). README.md lists the files.
################################################################################

data "aws_region" "current" {}

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  region     = data.aws_region.current.name
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  dns_suffix = data.aws_partition.current.dns_suffix

  # Receive from / send to the KMS-encrypted queues (kms:Decrypt on the module key comes with every function).
  encrypted_queues_statements = var.kms_key_arn == null ? [] : [{
    sid       = "EncryptedQueues"
    actions   = ["kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
  }]
}
