################################################################################
# Connections table
#   connection:   pk = conn#<connectionId>, sk = meta
#   subscription: pk = topic#<topic>,       sk = conn#<connectionId>
################################################################################

resource "aws_dynamodb_table" "connections" {
  name         = "${var.name}-connections"
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "pk"
  range_key    = "sk"

  deletion_protection_enabled = var.deletion_protection_enabled

  attribute {
    name = "pk"
    type = "S"
  }

  attribute {
    name = "sk"
    type = "S"
  }

  ttl {
    attribute_name = "expiresAt"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = var.point_in_time_recovery_enabled
  }

  # KMS encryption: the customer managed key when given, else the AWS managed key (aws/dynamodb).
  server_side_encryption {
    enabled     = true
    kms_key_arn = var.kms_key_arn
  }

  tags = merge(var.tags, { Name = "${var.name}-connections" })
}

################################################################################
# Events table
#   event:       topic = <topic>,                  seq = 1, 2, ...
#   counter:     topic = <topic>,                  seq = 0 (lastSeq, never expires)
#   idempotency: topic = dedup#<topic>#<eventId>,  seq = 0
################################################################################

resource "aws_dynamodb_table" "events" {
  name         = "${var.name}-events"
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "topic"
  range_key    = "seq"

  deletion_protection_enabled = var.deletion_protection_enabled

  attribute {
    name = "topic"
    type = "S"
  }

  attribute {
    name = "seq"
    type = "N"
  }

  ttl {
    attribute_name = "expiresAt"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = var.point_in_time_recovery_enabled
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = var.kms_key_arn
  }

  tags = merge(var.tags, { Name = "${var.name}-events" })
}
