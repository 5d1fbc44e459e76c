################################################################################
# Tables (their items: docs/internals.md)
#   connections  connection:   pk = conn#<connectionId>, sk = meta
#                subscription: pk = topic#<topic>,       sk = conn#<connectionId>
#   events       event:        topic = <topic>,                  seq = 1, 2, ...
#                counter:      topic = <topic>,                  seq = 0 (lastSeq, never expires)
#                idempotency:  topic = dedup#<topic>#<eventId>,  seq = 0
#   presence     one item per user: userId (with presence_enabled only)
################################################################################

locals {
  # Table (its name after "<name>-") => key schema, and whether items expire through TTL on expiresAt.
  tables = merge(
    {
      connections = { hash_key = "pk", range_key = "sk", attributes = { pk = "S", sk = "S" }, expires = true }
      events      = { hash_key = "topic", range_key = "seq", attributes = { topic = "S", seq = "N" }, expires = true }
    },
    # Never expires: a user's version must only grow.
    var.presence_enabled ? { presence = { hash_key = "userId", range_key = null, attributes = { userId = "S" }, expires = false } } : {},
  )
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
