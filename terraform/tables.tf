################################################################################
# Tables: one for each table the features declare (their items are described
# where they are declared: connections.tf, events.tf, presence.tf)
################################################################################

locals {
  # Table (its name after "<name>-") => key schema, and whether items expire through TTL on expiresAt.
  tables = merge(local.connections_tables, local.events_tables, local.presence_tables)
}

resource "aws_dynamodb_table" "this" {
  for_each = local.tables

  name         = "${var.name}-${each.key}"
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = each.value.hash_key
  range_key    = each.value.range_key

  deletion_protection_enabled = var.deletion_protection_enabled

  dynamic "attribute" {
    for_each = each.value.attributes

    content {
      name = attribute.key
      type = attribute.value
    }
  }

  dynamic "ttl" {
    for_each = each.value.expires ? ["expiresAt"] : []

    content {
      attribute_name = ttl.value
      enabled        = true
    }
  }

  point_in_time_recovery {
    enabled = var.point_in_time_recovery_enabled
  }

  # KMS encryption: the customer managed key when given, else the AWS managed key (aws/dynamodb).
  server_side_encryption {
    enabled     = true
    kms_key_arn = var.kms_key_arn
  }

  tags = merge(var.tags, { Name = "${var.name}-${each.key}" })
}
