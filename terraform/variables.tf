################################################################################
# General
################################################################################

variable "name" {
  description = "Prefix of every resource name (functions, queues, tables, APIs, alarms, dashboard). Lower-case letters, digits and hyphens, 3 to 32 characters."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{1,30}[a-z0-9]$", var.name))
    error_message = "The name must be 3 to 32 characters of [a-z0-9-], starting and ending with a letter or digit."
  }
}

variable "tags" {
  description = "Tags added to every resource that supports them."
  type        = map(string)
  default     = {}
}

variable "kms_key_arn" {
  description = "ARN of a customer managed KMS key used for the queues, tables, Lambda environment variables and log groups. Null (default) uses AWS managed encryption. The key policy must allow the SQS, DynamoDB, Lambda and CloudWatch Logs services of this region."
  type        = string
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", var.kms_key_arn))
    error_message = "The kms_key_arn must be a KMS key ARN (arn:<partition>:kms:<region>:<account>:key/<id>)."
  }
}

################################################################################
# Token verification
################################################################################

variable "token" {
  description = <<-EOT
    How clients' JWTs are verified (WebSocket `token` query parameter, HTTP `Authorization: Bearer`).
    - mode "hs256" (default): a shared secret read at runtime from exactly one of
      `secret_ssm_parameter_name` (SSM SecureString name) or `secret_arn` (Secrets Manager ARN).
      Its current and previous versions are both accepted, so rotating it refuses no valid token
      (README: "Rotating the token secret").
    - mode "jwks": asymmetric keys from `jwks_url` (https).
    `issuer` and `audience` are required and checked in both modes (`iss` and `aud` must match), so a
    token issued for another service, even one signed with the same secret, is refused.
    `max_lifetime_seconds` (default 86400) refuses tokens valid for longer (from `iat`, else from now).
    `kms_key_arn` is the customer managed key encrypting the secret, if any (AWS managed keys need no grant).
    The module never creates, reads or outputs the secret itself; ws-connect and events-api get read access to it.
  EOT
  type = object({
    mode                      = optional(string, "hs256")
    issuer                    = optional(string)
    audience                  = optional(string)
    max_lifetime_seconds      = optional(number, 86400)
    secret_ssm_parameter_name = optional(string)
    secret_arn                = optional(string)
    jwks_url                  = optional(string)
    kms_key_arn               = optional(string)
  })

  validation {
    condition     = contains(["hs256", "jwks"], var.token.mode)
    error_message = "The token.mode must be \"hs256\" or \"jwks\"."
  }

  validation {
    condition     = var.token.mode != "hs256" || ((var.token.secret_ssm_parameter_name != null) != (var.token.secret_arn != null))
    error_message = "In hs256 mode, set exactly one of token.secret_ssm_parameter_name and token.secret_arn."
  }

  validation {
    condition     = var.token.issuer != null && var.token.audience != null && trimspace(coalesce(var.token.issuer, " ")) != "" && trimspace(coalesce(var.token.audience, " ")) != ""
    error_message = "The token.issuer and token.audience are required in both modes (the iss and aud your tokens carry): without them, a token issued for another service would be accepted."
  }

  validation {
    condition     = var.token.max_lifetime_seconds != null && try(var.token.max_lifetime_seconds >= 60 && var.token.max_lifetime_seconds <= 2592000 && floor(var.token.max_lifetime_seconds) == var.token.max_lifetime_seconds, false)
    error_message = "The token.max_lifetime_seconds must be a whole number of seconds between 60 and 2592000 (30 days)."
  }

  validation {
    condition     = var.token.mode != "jwks" || var.token.jwks_url != null
    error_message = "In jwks mode, token.jwks_url is required."
  }

  validation {
    condition     = var.token.mode != "jwks" || (var.token.secret_ssm_parameter_name == null && var.token.secret_arn == null)
    error_message = "In jwks mode, no shared secret (token.secret_ssm_parameter_name, token.secret_arn) may be set."
  }

  validation {
    condition     = var.token.secret_ssm_parameter_name == null || can(regex("^/?[a-zA-Z0-9_.-]+(/[a-zA-Z0-9_.-]+)*$", var.token.secret_ssm_parameter_name))
    error_message = "The token.secret_ssm_parameter_name must be an SSM parameter name (e.g. /my-app/token-secret), not an ARN."
  }

  validation {
    condition     = var.token.secret_arn == null || can(regex("^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:.+$", var.token.secret_arn))
    error_message = "The token.secret_arn must be a Secrets Manager secret ARN."
  }

  validation {
    condition     = var.token.jwks_url == null || can(regex("^https://", var.token.jwks_url))
    error_message = "The token.jwks_url must be an https:// URL."
  }

  validation {
    condition     = var.token.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", var.token.kms_key_arn))
    error_message = "The token.kms_key_arn must be a KMS key ARN."
  }
}

################################################################################
# Events
################################################################################

locals {
  # A topic: contract/wire.json's patterns.topic (`.venv/bin/python -m scripts.docs.tf_contract --check` keeps them equal).
  topic_pattern = "^(all|(user|group|presence):[A-Za-z0-9_.@:|+-]{1,128})$"
}

variable "event_type_rules" {
  description = "Default audience per event type, for messages that carry none. First match wins. `type` is an fnmatch pattern (e.g. \"order.*\"); `audience` lists 1 to 100 topics, each optionally templated from the event data with {data.<field>} placeholders (e.g. \"user:{data.userId}\")."
  type = list(object({
    type     = string
    audience = list(string)
  }))
  default = []

  validation {
    condition     = alltrue([for r in var.event_type_rules : can(regex("^[a-z0-9_.*?\\[\\]!-]{1,64}$", r.type))])
    error_message = "Each event_type_rules[*].type must be a non-empty pattern of at most 64 characters from [a-z0-9_.-] and the wildcards * ? [ ] !."
  }

  validation {
    condition     = alltrue([for r in var.event_type_rules : length(r.audience) >= 1 && length(r.audience) <= 100])
    error_message = "Each event_type_rules[*].audience must list 1 to 100 topics."
  }

  # A {data.<field>} placeholder stands for a part of the topic (the function checks the value it takes).
  validation {
    condition = alltrue(flatten([for r in var.event_type_rules : [for a in r.audience :
      can(regex(local.topic_pattern, replace(a, "/\\{data(\\.[A-Za-z0-9_-]+)+\\}/", "x")))
    ]]))
    error_message = "Each event_type_rules[*].audience entry must form a topic (all, user:<id>, group:<name>, presence:<id>) once its {data.<field>} placeholders are filled, e.g. \"user:{data.userId}\"; not: ${join(", ", flatten([for r in var.event_type_rules : [for a in r.audience : jsonencode(a) if !can(regex(local.topic_pattern, replace(a, "/\\{data(\\.[A-Za-z0-9_-]+)+\\}/", "x")))]]))}."
  }

  validation {
    condition     = length(jsonencode(var.event_type_rules)) <= 2048
    error_message = "The event_type_rules must serialize to at most 2048 characters (they travel in a Lambda environment variable, limited to 4 KB in total)."
  }
}

variable "event_retention_days" {
  description = "How long stored events (and their idempotency records) stay readable over HTTP before DynamoDB TTL removes them."
  type        = number
  default     = 7

  validation {
    condition     = var.event_retention_days >= 1 && var.event_retention_days <= 365 && floor(var.event_retention_days) == var.event_retention_days
    error_message = "The event_retention_days must be a whole number between 1 and 365."
  }
}

variable "max_event_data_bytes" {
  description = "Largest accepted `data` of an event, in bytes of serialized JSON. Larger events go to the DLQ. Must leave room for the envelope within API Gateway's 128 KiB WebSocket message limit."
  type        = number
  default     = 32768

  validation {
    condition     = var.max_event_data_bytes >= 1 && var.max_event_data_bytes <= 122880
    error_message = "The max_event_data_bytes must be between 1 and 122880 (120 KiB)."
  }
}

variable "delivery_concurrency" {
  description = "Parallel PostToConnection calls per process-events invocation (the fanout function has fanout_concurrency). A 429 from the gateway halves it for the rest of the invocation; successes raise it back."
  type        = number
  default     = 32

  validation {
    condition     = var.delivery_concurrency >= 1 && var.delivery_concurrency <= 256
    error_message = "The delivery_concurrency must be between 1 and 256."
  }
}

variable "delivery_max_attempts" {
  description = "Posts of one event to one connection before it is given up (logged, counted in DeliveriesAbandoned; its client catches up over HTTP). Only the connections whose post failed transiently (429, 5xx, network) are posted again, after an exponential backoff with full jitter (1 s doubling, at most 900 s)."
  type        = number
  default     = 5

  validation {
    condition     = var.delivery_max_attempts >= 1 && var.delivery_max_attempts <= 20 && floor(var.delivery_max_attempts) == var.delivery_max_attempts
    error_message = "The delivery_max_attempts must be a whole number between 1 and 20."
  }
}

variable "delivery_posts_per_second" {
  description = "The most PostToConnection calls a second the module makes, all delivery together (inline and fan-out). Every delivery invocation that may run at once (both process-events mappings at process_events_maximum_concurrency each, and fanout at fanout_maximum_concurrency: 40 by default) gets an even share and spaces its posts to stay within it, so a broadcast slows down rather than taking the account's API Gateway quota from keepalives, connects and the account's other APIs. Null (default): the account's default 10,000 requests/s (\"Amazon API Gateway quotas\") less the expected sockets' pings (expected_connections / websocket_ping_interval_seconds), maintenance_connection_checks_per_second and the $connect throttle: 10,000 - 1,667 - 250 - 250 = 7,833 at the defaults, 195 posts/s per invocation; never under 1,000. Raise it with the account's quota (and fanout_maximum_concurrency with it: .venv/bin/python -m scripts.lab.broadcast_model)."
  type        = number
  default     = null

  validation {
    condition     = var.delivery_posts_per_second == null || try(var.delivery_posts_per_second >= 1 && var.delivery_posts_per_second <= 1000000 && floor(var.delivery_posts_per_second) == var.delivery_posts_per_second, false)
    error_message = "The delivery_posts_per_second must be null or a whole number between 1 and 1000000."
  }
}

variable "delivery_order_wait_ms" {
  description = "How long process-events waits, before posting a batch, for the batch before it on the same topic to have posted (milliseconds; 0 turns it off). Batches of one topic are stored in turn but posted by concurrent invocations: without the wait a socket gets two batches' frames interleaved, and its client holds each early frame back (gapGraceMs, 250 ms by default) or reads the gap over HTTP. The wait only happens while the batch before is still posting, so it adds no delay a client would not have added by holding the frames; it costs one small write per topic and batch (the topic's `postedSeq`) and, for a topic with many subscribers and a burst of events, per-topic throughput: its inline posts go one batch at a time. A batch whose predecessor does not finish within the bound posts anyway, so the bound should exceed the time one batch's inline posts take (fanout_threshold connections x batch size posts, delivery_concurrency at a time): make bench measures it on the emulator (docs/benchmarks.md, \"Frame order in a burst\": 30 events to 200 sockets, the frames that came after a higher seq without turns and with the 5,000 ms bound, and when the last one came); a bound shorter than one batch's posts leaves some out of order (22% with 1,000 ms in one run). Fan-out pages (audiences past fanout_threshold) do not wait."
  type        = number
  default     = 5000

  validation {
    condition     = var.delivery_order_wait_ms >= 0 && var.delivery_order_wait_ms <= 10000 && floor(var.delivery_order_wait_ms) == var.delivery_order_wait_ms
    error_message = "The delivery_order_wait_ms must be a whole number between 0 and 10000."
  }
}

variable "max_sessions_per_user" {
  description = "Live WebSocket sessions one user (token sub) may hold. The next $connect is refused with 429 (logged with reason too_many_sessions, counted in ConnectionsRefused); sessions whose connection record is gone do not count."
  type        = number
  default     = 10

  validation {
    condition     = var.max_sessions_per_user >= 1 && var.max_sessions_per_user <= 1000 && floor(var.max_sessions_per_user) == var.max_sessions_per_user
    error_message = "The max_sessions_per_user must be a whole number between 1 and 1000."
  }
}

variable "max_topics_per_token" {
  description = "Topics one token may grant (user:<sub>, all, one per group and per extra topic). A token granting more is refused at $connect and on HTTP (401 invalid_token, logged with reason too_many_topics)."
  type        = number
  default     = 100

  validation {
    condition     = var.max_topics_per_token >= 1 && var.max_topics_per_token <= 100 && floor(var.max_topics_per_token) == var.max_topics_per_token
    error_message = "The max_topics_per_token must be a whole number between 1 and 100 (contract/wire.json's topicsPerToken)."
  }
}

variable "connection_ttl_seconds" {
  description = "Lifetime of a connection record, counted from $connect (pings do not renew it). API Gateway closes every WebSocket after 2 hours, so the default (7500) outlives any real connection; a record whose $disconnect was missed expires through DynamoDB TTL, if maintenance has not removed it first."
  type        = number
  default     = 7500

  validation {
    condition     = var.connection_ttl_seconds >= 300 && var.connection_ttl_seconds <= 86400
    error_message = "The connection_ttl_seconds must be between 300 and 86400."
  }
}

################################################################################
# Events queue
################################################################################

variable "events_queue_message_retention_seconds" {
  description = "How long the events queue keeps an unprocessed message (the DLQ always keeps them 14 days)."
  type        = number
  default     = 345600

  validation {
    condition     = var.events_queue_message_retention_seconds >= 60 && var.events_queue_message_retention_seconds <= 1209600
    error_message = "The events_queue_message_retention_seconds must be between 60 and 1209600 (14 days)."
  }
}

variable "events_queue_visibility_timeout_seconds" {
  description = "Visibility timeout of the events queue. Null (default) computes 6 x process_events_timeout, the minimum AWS recommends for a Lambda consumer; an override must not be lower."
  type        = number
  default     = null

  validation {
    condition     = var.events_queue_visibility_timeout_seconds == null || try(var.events_queue_visibility_timeout_seconds >= 6 * var.process_events_timeout && var.events_queue_visibility_timeout_seconds <= 43200, false)
    error_message = "The events_queue_visibility_timeout_seconds must be at least 6 x process_events_timeout and at most 43200."
  }
}

variable "events_queue_max_receive_count" {
  description = "Receives of a message before SQS moves it to its DLQ, on the events, presence-events and fanout queues. A failed record is retried after a delay that grows with its receives (2^n s, at most 2 minutes), so the default, 100, lets a valid event wait out about 3 hours of overload (throttling, contention on a hot topic) instead of being dead-lettered: overload costs latency, not events, and the queues' age alarms fire meanwhile. process-events sends a record that failed 5 times for any other reason to the DLQ itself, with the error (errorCode failed_repeatedly)."
  type        = number
  default     = 100

  validation {
    condition     = var.events_queue_max_receive_count >= 1 && var.events_queue_max_receive_count <= 1000
    error_message = "The events_queue_max_receive_count must be between 1 and 1000."
  }
}

variable "events_queue_publisher_arns" {
  description = "IAM principals (role or user ARNs, wildcards allowed as in ArnLike, e.g. arn:aws:iam::123456789012:role/api-*) that may send to the events queue. Empty (default): any principal whose own IAM policy allows it, e.g. through publisher_policy_json. Set, the queue policy refuses sqs:SendMessage to every other principal (the module's functions stay allowed), however broad its IAM policy."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for a in var.events_queue_publisher_arns : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:(role|user)/.+$", a))])
    error_message = "Each events_queue_publisher_arns entry must be an IAM role or user ARN (arn:aws:iam::<account>:role/<name>); not: ${join(", ", [for a in var.events_queue_publisher_arns : a if !can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:(role|user)/.+$", a))])}."
  }
}

variable "queue_operator_arns" {
  description = "IAM principals (role or user ARNs, wildcards allowed as in ArnLike, e.g. arn:aws:iam::123456789012:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_Admin_*) of the operators who redrive the module's dead-letter queues. Every queue of the module but the producers' events queue refuses sqs:SendMessage to anyone but the functions that send to it and these principals, however broad their IAM policies: its messages are trusted as the module's own. A DLQ redrive (StartMessageMoveTask, the console's \"Start DLQ redrive\") sends to the source queue as the principal who starts it, so only the principals listed here can redrive; the events queue accepts them too when events_queue_publisher_arns is set. Empty (default): no one can redrive until listed (SQS's own moves to the DLQs are not affected)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for a in var.queue_operator_arns : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:(role|user)/.+$", a))])
    error_message = "Each queue_operator_arns entry must be an IAM role or user ARN (arn:aws:iam::<account>:role/<name>); not: ${join(", ", [for a in var.queue_operator_arns : a if !can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:(role|user)/.+$", a))])}."
  }
}

################################################################################
# process-events (SQS consumer)
################################################################################

variable "process_events_timeout" {
  description = "Timeout of the process-events function, in seconds. The queues it consumes (events, presence-events) get 6 times this as their visibility timeout, unless events_queue_visibility_timeout_seconds is set."
  type        = number
  default     = 60

  validation {
    condition     = var.process_events_timeout >= 3 && var.process_events_timeout <= 900
    error_message = "The process_events_timeout must be between 3 and 900 seconds."
  }
}

variable "process_events_memory_size" {
  description = "Memory of the process-events function, in MB (CPU and network scale with it)."
  type        = number
  default     = 512

  validation {
    condition     = var.process_events_memory_size >= 128 && var.process_events_memory_size <= 10240
    error_message = "The process_events_memory_size must be between 128 and 10240."
  }
}

variable "process_events_batch_size" {
  description = "Messages per process-events invocation."
  type        = number
  default     = 10

  validation {
    condition     = var.process_events_batch_size >= 1 && var.process_events_batch_size <= 10000
    error_message = "The process_events_batch_size must be between 1 and 10000."
  }
}

variable "process_events_maximum_batching_window_in_seconds" {
  description = "How long the event source mapping waits to fill a batch. 0 (default) favours latency; AWS requires at least 1 when the batch size is above 10."
  type        = number
  default     = 0

  validation {
    condition     = var.process_events_maximum_batching_window_in_seconds >= 0 && var.process_events_maximum_batching_window_in_seconds <= 300
    error_message = "The process_events_maximum_batching_window_in_seconds must be between 0 and 300."
  }

  validation {
    condition     = var.process_events_batch_size <= 10 || var.process_events_maximum_batching_window_in_seconds >= 1
    error_message = "A process_events_batch_size above 10 needs process_events_maximum_batching_window_in_seconds of at least 1."
  }
}

variable "process_events_maximum_concurrency" {
  description = "Most concurrent process-events invocations the SQS event source mapping starts."
  type        = number
  default     = 10

  validation {
    condition     = var.process_events_maximum_concurrency >= 2 && var.process_events_maximum_concurrency <= 1000
    error_message = "The process_events_maximum_concurrency must be between 2 and 1000."
  }
}

################################################################################
# fanout (large audiences, retried posts)
################################################################################

variable "fanout_timeout" {
  description = "Timeout of the fanout function, in seconds. The fanout queue's visibility timeout is 6 times this."
  type        = number
  default     = 60

  validation {
    condition     = var.fanout_timeout >= 3 && var.fanout_timeout <= 900
    error_message = "The fanout_timeout must be between 3 and 900 seconds."
  }
}

variable "fanout_memory_size" {
  description = "Memory of the fanout function, in MB (CPU and network scale with it: each invocation posts a page of fanout_page_size connections)."
  type        = number
  default     = 512

  validation {
    condition     = var.fanout_memory_size >= 128 && var.fanout_memory_size <= 10240
    error_message = "The fanout_memory_size must be between 128 and 10240."
  }
}

variable "fanout_threshold" {
  description = "Connections of a topic that process-events posts itself. A topic with more: process-events posts this many and hands the rest to the fanout function, as jobs over pages of fanout_page_size connections posted in parallel."
  type        = number
  default     = 500

  validation {
    condition     = var.fanout_threshold >= 1 && var.fanout_threshold <= 10000 && floor(var.fanout_threshold) == var.fanout_threshold
    error_message = "The fanout_threshold must be a whole number between 1 and 10000."
  }
}

variable "fanout_page_size" {
  description = "Connections one fanout job posts (one Query page of the topic's subscriptions)."
  type        = number
  default     = 1000

  validation {
    condition     = var.fanout_page_size >= 1 && var.fanout_page_size <= 10000 && floor(var.fanout_page_size) == var.fanout_page_size
    error_message = "The fanout_page_size must be a whole number between 1 and 10000."
  }
}

variable "fanout_concurrency" {
  description = "Parallel PostToConnection calls per fanout invocation. A 429 from the gateway halves it for the rest of the invocation; successes raise it back."
  type        = number
  default     = 64

  validation {
    condition     = var.fanout_concurrency >= 1 && var.fanout_concurrency <= 256 && floor(var.fanout_concurrency) == var.fanout_concurrency
    error_message = "The fanout_concurrency must be a whole number between 1 and 256."
  }
}

variable "fanout_maximum_concurrency" {
  description = "Most concurrent fanout invocations the SQS event source mapping starts (each posts one page). Together with fanout_concurrency it bounds the posts per second the module asks of API Gateway."
  type        = number
  default     = 20

  validation {
    condition     = var.fanout_maximum_concurrency >= 2 && var.fanout_maximum_concurrency <= 1000 && floor(var.fanout_maximum_concurrency) == var.fanout_maximum_concurrency
    error_message = "The fanout_maximum_concurrency must be a whole number between 2 and 1000."
  }
}

variable "subscription_shards" {
  description = "How many partition keys the subscription rows of a large topic are spread over: a topic (\"all\", \"group:everyone\") or a kind (\"group:*\", \"user:*\", \"presence:*\") => count from 1 to 64; topics not listed keep one key. Every connect writes, and every disconnect deletes, one row per topic of the connection, and DynamoDB serves at most 1,000 write units per second per partition (\"Best practices for designing and using partition keys effectively in DynamoDB\"): a row of a 100-topic token is about 3 KB (3 units), so API Gateway's 500 new connections per second per account (\"Quotas for configuring and running a WebSocket in API Gateway\") and as many disconnects take about 3,000 units a second on the broadcast topic alone. The default spreads `all` over 16 keys (16,000 units a second; more than 5 times that). A broadcast reads the keys in parallel: one page chain per key, started by process-events (fanout_threshold / keys subscribers of each inline). Give a large group its own count (\"group:everyone\" = 8); a small topic over several keys only costs its events one Query per key. Raise a count freely (readers are updated before the writer, in the same apply); after lowering one, connections already written to the dropped keys miss that topic's events until they reconnect (at most 2 hours, API Gateway's connection duration limit) and catch up over HTTP meanwhile."
  type        = map(number)
  default     = { all = 16 }

  validation {
    condition = alltrue([for topic, count in var.subscription_shards :
      (can(regex(local.topic_pattern, topic)) || contains(["user:*", "group:*", "presence:*"], topic)) &&
      count >= 1 && count <= 64 && floor(count) == count
    ])
    error_message = "Each subscription_shards key must be a topic (all, user:<id>, group:<name>, presence:<id>) or a kind (user:*, group:*, presence:*), and each count a whole number from 1 to 64."
  }
}

################################################################################
# Lambda (all functions)
################################################################################

variable "lambda_code_zip" {
  description = "Path to the functions zip (package `realtime/` at its root), e.g. dist/arm64/functions.zip."
  type        = string

  validation {
    condition     = endswith(var.lambda_code_zip, ".zip")
    error_message = "The lambda_code_zip must be the path of a .zip file."
  }
}

variable "lambda_layer_zip" {
  description = "Path to the dependencies layer zip (`python/` at its root), e.g. dist/arm64/layer.zip."
  type        = string

  validation {
    condition     = endswith(var.lambda_layer_zip, ".zip")
    error_message = "The lambda_layer_zip must be the path of a .zip file."
  }
}

variable "lambda_jwks_layer_zip" {
  description = "Path to the JWKS layer zip (`python/` at its root: cryptography, for RS256/ES256 token signatures), e.g. dist/arm64/layer-jwks.zip. Required when token.mode is \"jwks\", and then attached to ws-connect and events-api only; unused in hs256 mode. Kept out of the dependencies layer so that no other function unpacks it at a cold start (about half the layer's bytes)."
  type        = string
  default     = null

  validation {
    condition     = var.lambda_jwks_layer_zip == null || endswith(coalesce(var.lambda_jwks_layer_zip, "x.zip"), ".zip")
    error_message = "The lambda_jwks_layer_zip must be the path of a .zip file."
  }

  validation {
    condition     = var.token.mode != "jwks" || var.lambda_jwks_layer_zip != null
    error_message = "In jwks mode, lambda_jwks_layer_zip is required: the layer-jwks.zip built beside layer.zip (make build, or the release's layer-jwks-<arch>.zip)."
  }
}

variable "lambda_architecture" {
  description = "Instruction set of the functions and layer; the zips must be built for it."
  type        = string
  default     = "arm64"

  validation {
    condition     = contains(["arm64", "x86_64"], var.lambda_architecture)
    error_message = "The lambda_architecture must be \"arm64\" or \"x86_64\"."
  }
}

variable "lambda_memory_size" {
  description = "Memory of the WebSocket route functions and events-api, in MB."
  type        = number
  default     = 256

  validation {
    condition     = var.lambda_memory_size >= 128 && var.lambda_memory_size <= 10240
    error_message = "The lambda_memory_size must be between 128 and 10240."
  }
}

variable "lambda_timeout" {
  description = "Timeout of the WebSocket route functions, in seconds (API Gateway waits at most 29 s for them)."
  type        = number
  default     = 10

  validation {
    condition     = var.lambda_timeout >= 1 && var.lambda_timeout <= 29
    error_message = "The lambda_timeout must be between 1 and 29 seconds."
  }
}

variable "events_api_timeout" {
  description = "Timeout of the events-api function, in seconds. Long polls (`wait`) return before it; the HTTP API waits at most 30 s."
  type        = number
  default     = 29

  validation {
    condition     = var.events_api_timeout >= 1 && var.events_api_timeout <= 30
    error_message = "The events_api_timeout must be between 1 and 30 seconds."
  }
}

variable "events_api_reserved_concurrency" {
  description = "Concurrent executions reserved for (and the most allowed to) events-api, or null (default) for none. Each long poll holds an execution for up to 20 s, so many clients on the HTTP fallback can take the account's unreserved concurrency from ws-connect and process-events; past a cap, extra requests are refused at once (the HTTP API answers a throttled function with 500 on AWS, 429 on the emulator; the clients back off from both with jitter) instead of queuing behind a growing number of cold starts (make storm: a fallback storm with and without one). The GET /events route throttle (http_route_throttling) already bounds long polls at its rate x 20 s; a cap also bounds them when the account's concurrency is smaller than that. Size it to the fallback clients you expect at once plus headroom; the account must keep 100 executions unreserved."
  type        = number
  default     = null

  validation {
    condition     = var.events_api_reserved_concurrency == null || try(var.events_api_reserved_concurrency >= 1 && floor(var.events_api_reserved_concurrency) == var.events_api_reserved_concurrency, false)
    error_message = "The events_api_reserved_concurrency must be null or a whole number of at least 1."
  }
}

variable "lambda_tracing_mode" {
  description = "X-Ray tracing of the functions: null (default, off), \"PassThrough\" or \"Active\" (the Lambda tracing_config mode). When set, each invocation and its AWS SDK calls are traced with Powertools Tracer (POWERTOOLS_TRACE_DISABLED=false); when off, the X-Ray SDK is never imported, so cold starts do not pay for it. \"Active\" also attaches AWSXRayDaemonWriteAccess to each role."
  type        = string
  default     = null

  validation {
    condition     = var.lambda_tracing_mode == null || contains(["PassThrough", "Active"], coalesce(var.lambda_tracing_mode, "-"))
    error_message = "The lambda_tracing_mode must be null, \"PassThrough\" or \"Active\"."
  }
}

variable "log_level" {
  description = "Log level of the functions (POWERTOOLS_LOG_LEVEL and the Lambda application log level)."
  type        = string
  default     = "INFO"

  validation {
    condition     = contains(["DEBUG", "INFO", "WARN", "ERROR"], var.log_level)
    error_message = "The log_level must be one of DEBUG, INFO, WARN, ERROR."
  }
}

variable "log_retention_in_days" {
  description = "Retention of every log group the module creates (functions and API access logs)."
  type        = number
  default     = 30

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_in_days)
    error_message = "The log_retention_in_days must be one of CloudWatch Logs' values: 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653."
  }
}

variable "metrics_namespace" {
  description = "CloudWatch namespace of the functions' custom metrics (POWERTOOLS_METRICS_NAMESPACE)."
  type        = string
  default     = "RealtimeEvents"

  validation {
    condition     = can(regex("^[A-Za-z0-9_./#:-]{1,255}$", var.metrics_namespace)) && !startswith(var.metrics_namespace, "AWS/")
    error_message = "The metrics_namespace must be 1 to 255 characters of [A-Za-z0-9_./#:-] and must not start with AWS/."
  }
}

################################################################################
# DynamoDB
################################################################################

variable "point_in_time_recovery_enabled" {
  description = "Point-in-time recovery on the module's tables (connections, events, presence)."
  type        = bool
  default     = true
}

variable "deletion_protection_enabled" {
  description = "Deletion protection on the module's tables (connections, events, presence)."
  type        = bool
  default     = false
}

################################################################################
# WebSocket API
################################################################################

variable "websocket_stage_name" {
  description = "Name of the WebSocket API stage (last segment of the wss:// URL)."
  type        = string
  default     = "live"

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,128}$", var.websocket_stage_name))
    error_message = "The websocket_stage_name must be 1 to 128 characters of [A-Za-z0-9_-]."
  }
}

variable "websocket_management_endpoint" {
  description = "Override of the @connections endpoint the delivery functions post every frame to, as a template with {api_id} and {stage} placeholders. Null (default) uses https://{api_id}.execute-api.<region>.<dns suffix>/{stage}. Without allow_custom_management_endpoint it must be such an AWS endpoint (https, an execute-api host of an AWS partition); an emulator's (e.g. \"http://127.0.0.1:4566/_aws/execute-api/{api_id}/{stage}\") needs allow_custom_management_endpoint = true."
  type        = string
  default     = null

  validation {
    condition     = var.websocket_management_endpoint == null || can(regex("^https?://.*\\{api_id\\}", var.websocket_management_endpoint))
    error_message = "The websocket_management_endpoint must be an http(s):// URL template containing {api_id}."
  }

  # Every event's frame goes there, token-scoped data included: only API Gateway's own endpoint, unless an emulator is meant.
  validation {
    condition = (
      var.websocket_management_endpoint == null || var.allow_custom_management_endpoint ||
      can(regex("^https://\\{api_id\\}\\.execute-api\\.[a-z]{2}(-[a-z]+)+-[0-9]+\\.(amazonaws\\.com|amazonaws\\.com\\.cn|amazonaws\\.eu|c2s\\.ic\\.gov|sc2s\\.sgov\\.gov|cloud\\.adc-e\\.uk|csp\\.hci\\.ic\\.gov)/(\\{stage\\}|[A-Za-z0-9_-]+)/?$", var.websocket_management_endpoint))
    )
    error_message = "The websocket_management_endpoint must be API Gateway's own: https://{api_id}.execute-api.<region>.amazonaws.com/{stage} (or the region's partition suffix); set allow_custom_management_endpoint = true for an emulator or any other host."
  }
}

variable "allow_custom_management_endpoint" {
  description = "Let websocket_management_endpoint name any http(s) host, e.g. an emulator's (terraform/examples/local sets it). Off (default): only API Gateway's own https execute-api endpoint is accepted, so a typo or a hostile input cannot send every frame elsewhere, or in clear text."
  type        = bool
  default     = false
}

variable "expected_connections" {
  description = "Sockets the deployment should carry at once; the WebSocket throttles are sized from it (websocket_route_throttling and the stage's, unless set). Per socket: one ping every websocket_ping_interval_seconds, and 1% of the sockets reconnecting each minute. Derived, with 1.5x headroom: ping = expected / interval x 1.5 requests/s (100,000 / 60 s x 1.5 = 2,500/s, burst half of it: 1,250; pings are refused only past 150,000 sockets); $connect = 1%/min of expected x 1.5 (25/s at 100,000), but never under 250/s, so that a deployment that drops every socket has them back in N / 250 s (100,000: under 7 minutes), nor over 500/s, API Gateway's quota of new connections per second per account and Region across all its WebSocket APIs (\"Quotas for configuring and running a WebSocket in API Gateway\"); its burst is twice its rate, at most 500, for the first second of a reconnect storm; $default (unknown actions, which no client sends) stays at 25/s, burst 50; the stage = the routes' sum (2,775/s, burst 1,800), at most 10,000/s and 5,000, API Gateway's account throttle across all its APIs (\"Amazon API Gateway quotas\"). The gateway answers pings itself (no Lambda execution); ws-connect and ws-disconnect (250/s x 0.15 s = 38), events-api (GET /events' long polls 25/s x 20 s = 500, GET /presence 5), process-events (10), fanout (20), presence-checks (5) and maintenance (1) take about 580 of Lambda's default 1,000 concurrent executions per account and Region (scripts/lab/capacity.py). Refused when the pings (x 1.5) would pass the account's 10,000 requests/s or the reconnects its 500 new connections/s: at 60 s pings that is past 400,000 sockets; lengthen the clients' ping interval (and websocket_ping_interval_seconds; 1,000,000 at 300 s needs 5,000/s), or set websocket_route_throttling and the stage throttle yourself after a quota increase."
  type        = number
  default     = 100000

  validation {
    condition     = var.expected_connections >= 1 && floor(var.expected_connections) == var.expected_connections
    error_message = "The expected_connections must be a whole number of at least 1."
  }

  validation {
    condition = var.websocket_route_throttling != null || (
      ceil(var.expected_connections / var.websocket_ping_interval_seconds * 1.5) <= 10000 &&
      var.expected_connections * 0.01 / 60 <= 500
    )
    error_message = "The expected_connections are more than API Gateway's default account quotas carry: their pings (expected_connections / websocket_ping_interval_seconds x 1.5 headroom) must stay within 10,000 requests/s and their reconnects (1% a minute) within 500 new connections/s. Lengthen the clients' ping interval and websocket_ping_interval_seconds, or set websocket_route_throttling and the stage throttle after a quota increase."
  }
}

variable "websocket_ping_interval_seconds" {
  description = "How often each client pings while its page is visible, in seconds: the ping throttle is sized from it (see expected_connections). 60 is both clients' default (pingIntervalMs in the browser client, which pings every 8 minutes while its page is hidden, and ping_interval in the Python client); set it to the shortest interval the clients are given. The gateway answers pings itself (no function, no table write), but a ping and its pong are two billed messages: the interval is most of an idle socket's cost (docs/scaling.md). At most 540: API Gateway closes a socket idle for 10 minutes."
  type        = number
  default     = 60

  validation {
    condition     = var.websocket_ping_interval_seconds >= 1 && var.websocket_ping_interval_seconds <= 540
    error_message = "The websocket_ping_interval_seconds must be between 1 and 540 (API Gateway closes sockets idle for 10 minutes)."
  }
}

variable "websocket_throttling_burst_limit" {
  description = "Burst limit of the WebSocket stage (connect requests and messages). Null (default): the sum of the route throttles' bursts, at most 5,000 (see expected_connections)."
  type        = number
  default     = null

  validation {
    condition     = var.websocket_throttling_burst_limit == null || try(var.websocket_throttling_burst_limit >= 1 && var.websocket_throttling_burst_limit <= 5000, false)
    error_message = "The websocket_throttling_burst_limit must be null or between 1 and 5000."
  }
}

variable "websocket_throttling_rate_limit" {
  description = "Steady-state requests per second of the WebSocket stage (connect requests and messages). Null (default): the sum of the route throttles' rates, at most 10,000, API Gateway's account throttle (see expected_connections)."
  type        = number
  default     = null

  validation {
    condition     = var.websocket_throttling_rate_limit == null || try(var.websocket_throttling_rate_limit >= 1 && var.websocket_throttling_rate_limit <= 10000, false)
    error_message = "The websocket_throttling_rate_limit must be null or between 1 and 10000."
  }
}

variable "websocket_route_throttling" {
  description = "Throttling of single routes, below the stage's: route key ($connect, ping or $default) => { burst_limit, rate_limit }. Null (default): sized from expected_connections and websocket_ping_interval_seconds (see expected_connections: at 100,000 sockets ping 5,000/s burst 2,500, $connect 250/s burst 500, $default 25/s burst 50). A map replaces them: only the routes it lists are throttled on their own. API Gateway cannot throttle one socket, so the routes any open socket may call at will get budgets of their own: a flood of frames is refused there (429 to the sender) before it spends what new connections, and the account's other APIs, need. A refused ping is a missed pong to the client, which reconnects after missing them: size ping's rate above expected sockets / ping interval. $default (unknown actions) costs no Lambda call but still counts against the account's API Gateway quota. $connect: each is one ws-connect invocation (about 0.1 s, so 25 concurrent executions at 250/s) that, when accepted, writes the connection, its session and one subscription item per topic (in batches of 25), and when refused writes nothing; N clients that reconnect at once need N / rate seconds, and read over HTTP meanwhile."
  type = map(object({
    burst_limit = number
    rate_limit  = number
  }))
  default = null

  validation {
    condition     = length(setsubtract(keys(var.websocket_route_throttling == null ? {} : var.websocket_route_throttling), ["$connect", "ping", "$default"])) == 0
    error_message = "The websocket_route_throttling keys must be routes of the WebSocket API: $connect, ping or $default; not: ${join(", ", setsubtract(keys(var.websocket_route_throttling == null ? {} : var.websocket_route_throttling), ["$connect", "ping", "$default"]))}."
  }

  validation {
    condition = alltrue([for k, t in(var.websocket_route_throttling == null ? {} : var.websocket_route_throttling) :
      t.burst_limit >= 0 && t.burst_limit <= coalesce(var.websocket_throttling_burst_limit, 5000) && t.rate_limit >= 0 && t.rate_limit <= coalesce(var.websocket_throttling_rate_limit, 10000)
    ])
    error_message = "Each websocket_route_throttling limit must be between 0 and the stage's (websocket_throttling_burst_limit, websocket_throttling_rate_limit; when null, 5,000 and 10,000, API Gateway's account throttle)."
  }
}

variable "create_api_gateway_cloudwatch_role" {
  description = "Create the account-level API Gateway CloudWatch Logs role (aws_api_gateway_account; one per account and region) that WebSocket stage access logging requires. Leave false if the account already has one."
  type        = bool
  default     = false
}

################################################################################
# HTTP API
################################################################################

variable "cors_allow_origins" {
  description = "Origins of the web application allowed to call the HTTP API from a browser (CORS), e.g. [\"https://app.example.com\"]. Empty (default): no cross-origin access, so a browser client's HTTP fallback only works once its origin is listed. \"*\" is refused: list the application's origins."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for o in var.cors_allow_origins : can(regex("^https?://[^/*]+$", o))])
    error_message = "Each cors_allow_origins entry must be an origin such as https://app.example.com (scheme, host and optional port; no path and no \"*\": list the application's origins); not: ${join(", ", [for o in var.cors_allow_origins : jsonencode(o) if !can(regex("^https?://[^/*]+$", o))])}."
  }
}

variable "http_throttling_burst_limit" {
  description = "Burst limit of the HTTP API stage."
  type        = number
  default     = 500

  validation {
    condition     = var.http_throttling_burst_limit >= 1 && var.http_throttling_burst_limit <= 5000
    error_message = "The http_throttling_burst_limit must be between 1 and 5000."
  }
}

variable "http_throttling_rate_limit" {
  description = "Steady-state requests per second of the HTTP API stage."
  type        = number
  default     = 1000

  validation {
    condition     = var.http_throttling_rate_limit >= 1 && var.http_throttling_rate_limit <= 10000
    error_message = "The http_throttling_rate_limit must be between 1 and 10000."
  }
}

variable "http_route_throttling" {
  description = "Throttling of single routes of the HTTP API, below the stage's: route key (\"GET /events\" or \"GET /presence\") => { burst_limit, rate_limit }. A request over it gets 429 from the gateway; the clients back off with jitter (and honour Retry-After). GET /events (25/s, burst 50): a long poll holds an events-api execution for up to 20 s (the longest wait), so the route's rate bounds its long polls at rate x 20 s concurrent executions: 25/s x 20 s = 500, half of Lambda's default 1,000 concurrent executions per account and Region, which leaves the other half to the delivery functions (process-events up to process_events_maximum_concurrency, 10; fanout up to fanout_maximum_concurrency, 20; presence-checks 5; ws-connect and ws-disconnect about 38 under the WebSocket $connect throttle) and the account's other functions. 25/s serves 500 clients long-polling at once; raise it with the clients on the HTTP fallback, and with events_api_reserved_concurrency once the account's concurrency allows. GET /presence (50/s, burst 100) answers at once (about 0.1 s: 5 executions at 50/s); its limit bounds the presence reads, each up to max_presence_users_per_request users. Accounts whose Lambda concurrency quota is below 1,000 (new accounts can start at 10) meet Lambda's own throttle first (a 500 from the HTTP API, which the clients also back off from): lower these rates there."
  type = map(object({
    burst_limit = number
    rate_limit  = number
  }))
  default = {
    "GET /events"   = { burst_limit = 50, rate_limit = 25 }
    "GET /presence" = { burst_limit = 100, rate_limit = 50 }
  }

  validation {
    condition     = length(setsubtract(keys(var.http_route_throttling), ["GET /events", "GET /presence"])) == 0
    error_message = "The http_route_throttling keys must be routes of the HTTP API: \"GET /events\" or \"GET /presence\"; not: ${join(", ", setsubtract(keys(var.http_route_throttling), ["GET /events", "GET /presence"]))}."
  }

  validation {
    condition = alltrue([for k, t in var.http_route_throttling :
      t.burst_limit >= 0 && t.burst_limit <= var.http_throttling_burst_limit && t.rate_limit >= 0 && t.rate_limit <= var.http_throttling_rate_limit
    ])
    error_message = "Each http_route_throttling limit must be between 0 and the stage's (http_throttling_burst_limit, http_throttling_rate_limit)."
  }
}

################################################################################
# Custom domains
################################################################################

variable "custom_domains" {
  description = "Your own names for the APIs, each with an ACM certificate in this Region that covers it: `websocket` (clients connect to wss://<domain_name>) and `http` (the events API at https://<domain_name>); either may be left out. A regional API Gateway domain name (TLS 1.2) and its API mapping are created for each, and the websocket_url and http_api_url outputs become these names. DNS is yours: point each name at its custom_domain_targets output (an alias, or a CNAME to target_domain_name). The execute-api names keep working, and delivery keeps posting to the execute-api @connections endpoint."
  type = object({
    websocket = optional(object({ domain_name = string, certificate_arn = string }))
    http      = optional(object({ domain_name = string, certificate_arn = string }))
  })
  default = {}

  validation {
    condition = alltrue([for d in [var.custom_domains.websocket, var.custom_domains.http] : d == null || (
      can(regex("^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z]{2,63}$", d.domain_name)) &&
      can(regex("^arn:aws[a-z-]*:acm:[a-z0-9-]+:[0-9]{12}:certificate/[0-9a-f-]+$", d.certificate_arn))
    )])
    error_message = "Each custom_domains entry needs a lower-case host name (e.g. ws.example.com) and the ARN of an ACM certificate (arn:aws:acm:<region>:<account>:certificate/<id>)."
  }
}

################################################################################
# Monitoring
################################################################################

variable "create_alarms" {
  description = "Create the CloudWatch alarms: dead-letter queues not empty, function errors and throttles, queue ages, concurrency near its ceilings, delivery lag, throttled posts and gateway rejections (docs/runbook.md says what each means and what to do)."
  type        = bool
  default     = true
}

variable "alarm_actions" {
  description = "ARNs (e.g. SNS topics) notified when an alarm fires."
  type        = list(string)
  default     = []
}

variable "ok_actions" {
  description = "ARNs notified when an alarm returns to OK."
  type        = list(string)
  default     = []
}

variable "events_queue_age_alarm_threshold_seconds" {
  description = "Alarm when the oldest message of the events queue is older than this, in seconds."
  type        = number
  default     = 60

  validation {
    condition     = var.events_queue_age_alarm_threshold_seconds >= 1
    error_message = "The events_queue_age_alarm_threshold_seconds must be at least 1."
  }
}

variable "saturation_alarm_thresholds" {
  description = <<-EOT
    When the saturation alarms fire (docs/runbook.md). `delivery_lag_seconds` (30): the p90 of DeliveryLag, an
    event's publishedAt to its first posts, 3 minutes in 5; inline posts take well under a second, and a broadcast to N connections
    at least N / 10,000 s (the account's API Gateway rate, docs/scaling.md): 30 s is delivery falling behind up to
    300,000 connections a topic; raise it above your largest broadcast's duration.
    `throttled_posts_percent` (5): the share of @connections posts answered 429, 3 minutes in 5; they are retried
    with backoff, so a few are harmless and a steady share means the account's API Gateway rate is spent.
    `websocket_rejections_per_minute` (60): the WebSocket stage's ClientError (4XX from the gateway before any
    function: its throttles), 3 minutes in 5; clients back off for seconds, so 60 a minute is many clients kept out.
    `http_client_errors_percent` (10): the HTTP API's 4xx share (429 throttles, and 400/401 from events-api), 3
    minutes in 5, counted from 60 requests a minute (GET /events is throttled at 25/s, 1,500 a minute).
    `concurrency_percent` (80): a function at this share of its ceiling (its mapping's maximum concurrency, its
    reserved concurrency) 3 minutes in 5, or the account's claimed concurrency at this share of
    `lambda_concurrency_quota` (1,000, the default quota of an account and Region: set yours).
  EOT
  type = object({
    delivery_lag_seconds            = optional(number, 30)
    throttled_posts_percent         = optional(number, 5)
    websocket_rejections_per_minute = optional(number, 60)
    http_client_errors_percent      = optional(number, 10)
    concurrency_percent             = optional(number, 80)
    lambda_concurrency_quota        = optional(number, 1000)
  })
  default  = {}
  nullable = false

  validation {
    condition = (
      var.saturation_alarm_thresholds.delivery_lag_seconds >= 1 &&
      var.saturation_alarm_thresholds.throttled_posts_percent > 0 && var.saturation_alarm_thresholds.throttled_posts_percent <= 100 &&
      var.saturation_alarm_thresholds.websocket_rejections_per_minute >= 1 &&
      var.saturation_alarm_thresholds.http_client_errors_percent > 0 && var.saturation_alarm_thresholds.http_client_errors_percent <= 100 &&
      var.saturation_alarm_thresholds.concurrency_percent > 0 && var.saturation_alarm_thresholds.concurrency_percent <= 100 &&
      var.saturation_alarm_thresholds.lambda_concurrency_quota >= 10
    )
    error_message = "The saturation_alarm_thresholds need delivery_lag_seconds >= 1, websocket_rejections_per_minute >= 1, lambda_concurrency_quota >= 10, and percentages above 0 and at most 100."
  }
}

variable "create_dashboard" {
  description = "Create a CloudWatch dashboard named after `name` with the key metrics."
  type        = bool
  default     = true
}

################################################################################
# Presence
################################################################################

variable "presence_enabled" {
  description = "Track who is online: the presence table, the presence-checks queue and function, presence events (presence.online/offline) and GET /presence. False leaves all of these out; connections, events and the maintenance run (which then only removes connections whose $disconnect was missed) stay."
  type        = bool
  default     = true
}

variable "presence_grace_period_seconds" {
  description = "How long after a user's last session ends the user is still shown online; presence.offline is sent only if no new session started meanwhile, so a page reload never flaps. Whole seconds, at most 900 (the longest SQS message delay)."
  type        = number
  default     = 5

  validation {
    condition     = var.presence_grace_period_seconds >= 1 && var.presence_grace_period_seconds <= 900 && floor(var.presence_grace_period_seconds) == var.presence_grace_period_seconds
    error_message = "The presence_grace_period_seconds must be a whole number between 1 and 900."
  }
}

variable "group_presence_enabled" {
  description = "Also send each user's presence events to group:<g> for every group of the user's token (besides presence:<user>). Its cost grows with the square of a group's size: as n members come online, each online event reaches every member already online, about n^2/2 frames (1,000 members: about 500,000 frames, $0.50 of WebSocket messages, and as many again going offline). Keep it for small teams; for large groups grant presence:<id> topics for the people a user follows, and read rosters with GET /presence."
  type        = bool
  default     = false
}

variable "max_presence_users_per_request" {
  description = "Most user ids one GET /presence?users=... may ask about (more is a 400)."
  type        = number
  default     = 50

  validation {
    condition     = var.max_presence_users_per_request >= 1 && var.max_presence_users_per_request <= 100 && floor(var.max_presence_users_per_request) == var.max_presence_users_per_request
    error_message = "The max_presence_users_per_request must be a whole number between 1 and 100."
  }
}

################################################################################
# Maintenance
################################################################################

variable "maintenance_schedule_expression" {
  description = "When the maintenance function runs (EventBridge Scheduler rate() or cron() expression). It removes connections whose $disconnect was missed, so this bounds how long such a user can stay online (plus the stale threshold and grace period)."
  type        = string
  default     = "rate(5 minutes)"

  validation {
    condition     = can(regex("^(rate\\(([1-9][0-9]*) (minute|minutes|hour|hours|day|days)\\)|cron\\(.+\\))$", var.maintenance_schedule_expression))
    error_message = "The maintenance_schedule_expression must be a rate(...) or cron(...) expression, e.g. \"rate(5 minutes)\"."
  }
}

variable "stale_connection_threshold_seconds" {
  description = "maintenance asks API Gateway (GetConnection) about connections not seen for this long (since their connect or maintenance's last check: pings are answered by the gateway and write nothing), removes those it no longer knows and marks the others seen. With the schedule (rate(5 minutes)) each live connection costs a GetConnection and a write every threshold plus schedule period (10 minutes by default), and a connection whose $disconnect was missed is removed within that period: a longer threshold costs less and repairs later."
  type        = number
  default     = 300

  validation {
    condition     = var.stale_connection_threshold_seconds >= 60 && var.stale_connection_threshold_seconds <= 7200
    error_message = "The stale_connection_threshold_seconds must be between 60 and 7200."
  }
}

variable "maintenance_scan_items_per_run" {
  description = "Items each maintenance run reads from the connections table (connection records and subscriptions) and from the presence table, each, starting where the previous run stopped; the next run carries on and the scan starts over after the table's end. So a run's cost does not grow with the tables, and every connection record is visited at least once every ceil(table items / this) runs (see docs/internals.md, Maintenance). Read units per table and run: about this times the item size over 8 KB."
  type        = number
  default     = 200000

  validation {
    condition     = var.maintenance_scan_items_per_run >= 1000 && var.maintenance_scan_items_per_run <= 10000000 && floor(var.maintenance_scan_items_per_run) == var.maintenance_scan_items_per_run
    error_message = "The maintenance_scan_items_per_run must be a whole number between 1000 and 10000000."
  }
}

variable "maintenance_connection_checks_per_second" {
  description = "Most GetConnection checks maintenance starts a second (16 in flight at most, about 20 ms each: at most about 800/s; closing a socket whose token expired counts as one, of two requests). Each live connection is due a check every stale_connection_threshold_seconds + the schedule period (600 s by default), so this should be at least expected_connections / 600 s: the default, 250/s, is 100,000 / 600 x 1.5 headroom; slower, each connection is checked less often and a missed $disconnect is repaired later (.venv/bin/python -m scripts.lab.capacity). They share the account's API Gateway quota (10,000 requests a second per Region by default) with delivery and keepalives."
  type        = number
  default     = 250

  validation {
    condition     = var.maintenance_connection_checks_per_second >= 1 && var.maintenance_connection_checks_per_second <= 5000 && floor(var.maintenance_connection_checks_per_second) == var.maintenance_connection_checks_per_second
    error_message = "The maintenance_connection_checks_per_second must be a whole number between 1 and 5000."
  }
}

################################################################################
# Database changes (DynamoDB Streams of application tables)
################################################################################

variable "db_changes_sources" {
  description = <<-EOT
    Application-table streams whose item changes become events (adds the db-changes function; none by default).
    Each source: `name` (key of its mapping), `stream_arn` (the table's current stream, same account and region),
    `rules`, optional `table_kms_key_arn` (the table's customer managed key) and mapping options (bounded retries
    and record age, batch size and window, parallelization, starting position). Each rule: `name` (unique in its
    source, part of every event id), `event_type`, `kinds` (INSERT/MODIFY/REMOVE; default all, or INSERT and MODIFY
    with `when.becomes`), `when` (null: any change; `{ attribute = "status" }`: that attribute's value changes;
    `{ attribute = "online", becomes = { BOOL = true } }`: it becomes that value, one of S, N, BOOL), `audience`
    (topic templates over top-level attributes, e.g. "presence:{doctorId}"), `list_placeholders` (the audience
    attributes that may hold a list or set, each element giving a topic, e.g. ["clinicIds"]; a list anywhere else
    skips the rule) and `data` (attributes copied into the event; none by default). Lambda event filters are generated
    from the rules. The table's stream view type is checked against what the rules read (NEW_AND_OLD_IMAGES when a
    `when` rule reacts to MODIFY). The rules travel in the function's environment, so their JSON is limited to
    about 3.2 KB. See docs/internals.md.
  EOT
  type = list(object({
    name       = string
    stream_arn = string
    rules = list(object({
      name       = string
      event_type = string
      kinds      = optional(list(string))
      when = optional(object({
        attribute = string
        becomes = optional(object({
          S    = optional(string)
          N    = optional(string)
          BOOL = optional(bool)
        }))
      }))
      audience          = list(string)
      list_placeholders = optional(list(string), [])
      data              = optional(list(string), [])
    }))
    table_kms_key_arn                  = optional(string)
    starting_position                  = optional(string, "LATEST")
    batch_size                         = optional(number, 100)
    maximum_batching_window_in_seconds = optional(number, 0)
    parallelization_factor             = optional(number, 1)
    maximum_retry_attempts             = optional(number, 10)
    maximum_record_age_in_seconds      = optional(number, 3600)
  }))
  default = []

  validation {
    condition     = alltrue([for s in var.db_changes_sources : can(regex("^[a-z0-9][a-z0-9_-]{0,63}$", s.name))]) && length(distinct(var.db_changes_sources[*].name)) == length(var.db_changes_sources)
    error_message = "Each db_changes_sources[*].name must be unique and 1-64 characters [a-z0-9_-] starting with a letter or digit; got ${jsonencode(var.db_changes_sources[*].name)}."
  }

  validation {
    condition     = alltrue([for s in var.db_changes_sources : can(regex("^arn:aws[a-z-]*:dynamodb:[a-z0-9-]+:[0-9]{12}:table/[A-Za-z0-9_.-]{3,255}/stream/\\S+$", s.stream_arn))])
    error_message = "Each db_changes_sources[*].stream_arn must be a DynamoDB stream ARN (arn:aws:dynamodb:<region>:<account>:table/<name>/stream/<label>, e.g. aws_dynamodb_table.x.stream_arn); not: ${join(", ", [for s in var.db_changes_sources : "${s.name} (${s.stream_arn})" if !can(regex("^arn:aws[a-z-]*:dynamodb:[a-z0-9-]+:[0-9]{12}:table/[A-Za-z0-9_.-]{3,255}/stream/\\S+$", s.stream_arn))])}."
  }

  validation {
    condition     = alltrue([for s in var.db_changes_sources : length(s.rules) > 0 && length(distinct(s.rules[*].name)) == length(s.rules) && alltrue([for r in s.rules : can(regex("^[a-z0-9][a-z0-9_-]{0,63}$", r.name))])])
    error_message = "Each db_changes source needs at least one rule, and rule names must be unique within their source and 1-64 characters [a-z0-9_-] starting with a letter or digit; check: ${join(", ", [for s in var.db_changes_sources : "${s.name} ${jsonencode(s.rules[*].name)}" if !(length(s.rules) > 0 && length(distinct(s.rules[*].name)) == length(s.rules) && alltrue([for r in s.rules : can(regex("^[a-z0-9][a-z0-9_-]{0,63}$", r.name))]))])}."
  }

  validation {
    condition     = alltrue(flatten([for s in var.db_changes_sources : [for r in s.rules : can(regex("^[a-z0-9_.-]{1,64}$", r.event_type))]]))
    error_message = "A db_changes rule's event_type must be 1-64 characters [a-z0-9_.-]; not: ${join(", ", flatten([for s in var.db_changes_sources : [for r in s.rules : "${s.name}/${r.name} (${jsonencode(r.event_type)})" if !can(regex("^[a-z0-9_.-]{1,64}$", r.event_type))]]))}."
  }

  validation {
    condition = alltrue(flatten([for s in var.db_changes_sources : [for r in s.rules :
      r.kinds == null || (length(coalesce(r.kinds, [])) > 0 && length(distinct(coalesce(r.kinds, []))) == length(coalesce(r.kinds, [])) && length(setsubtract(coalesce(r.kinds, []), ["INSERT", "MODIFY", "REMOVE"])) == 0)
    ]]))
    error_message = "A db_changes rule's kinds must be a non-empty list of distinct INSERT, MODIFY, REMOVE; not: ${join(", ", flatten([for s in var.db_changes_sources : [for r in s.rules : "${s.name}/${r.name} ${jsonencode(r.kinds)}" if !(r.kinds == null || (length(coalesce(r.kinds, [])) > 0 && length(distinct(coalesce(r.kinds, []))) == length(coalesce(r.kinds, [])) && length(setsubtract(coalesce(r.kinds, []), ["INSERT", "MODIFY", "REMOVE"])) == 0))]]))}."
  }

  validation {
    condition     = alltrue(flatten([for s in var.db_changes_sources : [for r in s.rules : r.when == null || can(regex("^[A-Za-z0-9_.-]{1,255}$", try(r.when.attribute, "")))]]))
    error_message = "A db_changes rule's when.attribute must be a top-level attribute name of 1-255 characters [A-Za-z0-9_.-]; not: ${join(", ", flatten([for s in var.db_changes_sources : [for r in s.rules : "${s.name}/${r.name} (${jsonencode(try(r.when.attribute, null))})" if !(r.when == null || can(regex("^[A-Za-z0-9_.-]{1,255}$", try(r.when.attribute, ""))))]]))}."
  }

  validation {
    condition = alltrue(flatten([for s in var.db_changes_sources : [for r in s.rules :
      try(r.when.becomes, null) == null ? true : (length([for v in values(r.when.becomes) : v if v != null]) == 1 && can(tonumber(coalesce(r.when.becomes.N, "0"))))
    ]]))
    error_message = "A db_changes rule's when.becomes must set exactly one of S, N (a number) or BOOL, e.g. { BOOL = true }; not: ${join(", ", flatten([for s in var.db_changes_sources : [for r in s.rules : "${s.name}/${r.name} ${jsonencode(try(r.when.becomes, null))}" if !(try(r.when.becomes, null) == null ? true : (length([for v in values(r.when.becomes) : v if v != null]) == 1 && can(tonumber(coalesce(r.when.becomes.N, "0")))))]]))}."
  }

  validation {
    condition     = alltrue(flatten([for s in var.db_changes_sources : [for r in s.rules : try(r.when.becomes, null) == null || !contains(coalesce(r.kinds, ["INSERT", "MODIFY"]), "REMOVE")]]))
    error_message = "A db_changes rule with when.becomes cannot react to REMOVE (a removed item has no new value); drop REMOVE from kinds of: ${join(", ", flatten([for s in var.db_changes_sources : [for r in s.rules : "${s.name}/${r.name}" if !(try(r.when.becomes, null) == null || !contains(coalesce(r.kinds, ["INSERT", "MODIFY"]), "REMOVE"))]]))}."
  }

  validation {
    condition = alltrue(flatten([for s in var.db_changes_sources : [for r in s.rules :
      length(r.audience) >= 1 && length(r.audience) <= 100 && length(distinct(r.audience)) == length(r.audience) && alltrue([for t in r.audience :
        can(regex(local.topic_pattern, replace(t, "/\\{[A-Za-z0-9_.-]{1,255}\\}/", "x")))
      ])
    ]]))
    error_message = "A db_changes rule's audience must list 1-100 distinct topic templates such as \"user:{patientId}\", \"group:{clinicId}\", \"presence:{doctorId}\" or \"all\" ({attribute} names a top-level attribute); not: ${join(", ", flatten([for s in var.db_changes_sources : [for r in s.rules : "${s.name}/${r.name} ${jsonencode(r.audience)}" if !(length(r.audience) >= 1 && length(r.audience) <= 100 && length(distinct(r.audience)) == length(r.audience) && alltrue([for t in r.audience : can(regex(local.topic_pattern, replace(t, "/\\{[A-Za-z0-9_.-]{1,255}\\}/", "x")))]))]]))}."
  }

  validation {
    condition = alltrue(flatten([for s in var.db_changes_sources : [for r in s.rules :
      length(distinct(r.list_placeholders)) == length(r.list_placeholders) && alltrue([for a in r.list_placeholders : strcontains(join(" ", r.audience), "{${a}}")])
    ]]))
    error_message = "A db_changes rule's list_placeholders must name distinct attributes that its audience templates use as {placeholders}; not: ${join(", ", flatten([for s in var.db_changes_sources : [for r in s.rules : "${s.name}/${r.name} ${jsonencode(r.list_placeholders)}" if !(length(distinct(r.list_placeholders)) == length(r.list_placeholders) && alltrue([for a in r.list_placeholders : strcontains(join(" ", r.audience), "{${a}}")]))]]))}."
  }

  validation {
    condition     = alltrue(flatten([for s in var.db_changes_sources : [for r in s.rules : length(r.data) <= 100 && length(distinct(r.data)) == length(r.data) && alltrue([for a in r.data : can(regex("^[A-Za-z0-9_.-]{1,255}$", a))])]]))
    error_message = "A db_changes rule's data must list at most 100 distinct top-level attribute names [A-Za-z0-9_.-]; not: ${join(", ", flatten([for s in var.db_changes_sources : [for r in s.rules : "${s.name}/${r.name} ${jsonencode(r.data)}" if !(length(r.data) <= 100 && length(distinct(r.data)) == length(r.data) && alltrue([for a in r.data : can(regex("^[A-Za-z0-9_.-]{1,255}$", a))]))]]))}."
  }

  validation {
    condition     = length(jsonencode(var.db_changes_sources[*].rules)) + 160 * length(var.db_changes_sources) <= 3400
    error_message = "The db_changes rules serialize to ${length(jsonencode(var.db_changes_sources[*].rules))} bytes of JSON, plus about 160 per source for its name and stream ARN; at most 3400 in all fit in the db-changes function's environment (Lambda allows 4 KB for all its variables). Shorten names and templates, or project fewer attributes."
  }

  validation {
    condition = alltrue([for s in var.db_changes_sources :
      contains(["LATEST", "TRIM_HORIZON"], s.starting_position) &&
      s.batch_size >= 1 && s.batch_size <= 10000 &&
      s.maximum_batching_window_in_seconds >= 0 && s.maximum_batching_window_in_seconds <= 300 &&
      s.parallelization_factor >= 1 && s.parallelization_factor <= 10
    ])
    error_message = "Each db_changes source needs starting_position LATEST or TRIM_HORIZON, batch_size 1-10000, maximum_batching_window_in_seconds 0-300 and parallelization_factor 1-10."
  }

  validation {
    condition = alltrue([for s in var.db_changes_sources :
      s.maximum_retry_attempts >= 0 && s.maximum_retry_attempts <= 10000 &&
      s.maximum_record_age_in_seconds >= 60 && s.maximum_record_age_in_seconds <= 604800
    ])
    error_message = "Each db_changes source needs bounded retries: maximum_retry_attempts 0-10000 and maximum_record_age_in_seconds 60-604800 (-1, retry forever, would let one bad record block its shard)."
  }

  validation {
    condition     = alltrue([for s in var.db_changes_sources : s.table_kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", s.table_kms_key_arn))])
    error_message = "Each db_changes_sources[*].table_kms_key_arn must be null or a KMS key ARN."
  }
}

variable "db_changes_max_topics_per_record" {
  description = "Most topics the db_changes rules may give for one stream record, all rules together (list placeholders multiply). A record over it gives no event: a pointer to it goes to the db-changes failures queue with errorCode too_many_topics and the reason, and the rest of the batch carries on."
  type        = number
  default     = 100

  validation {
    condition     = var.db_changes_max_topics_per_record >= 1 && var.db_changes_max_topics_per_record <= 1000 && floor(var.db_changes_max_topics_per_record) == var.db_changes_max_topics_per_record
    error_message = "The db_changes_max_topics_per_record must be a whole number between 1 and 1000."
  }
}

variable "db_changes_timeout" {
  description = "Timeout of the db-changes function, in seconds."
  type        = number
  default     = 60

  validation {
    condition     = var.db_changes_timeout >= 3 && var.db_changes_timeout <= 900
    error_message = "The db_changes_timeout must be between 3 and 900 seconds."
  }
}

variable "db_changes_memory_size" {
  description = "Memory of the db-changes function, in MB."
  type        = number
  default     = 256

  validation {
    condition     = var.db_changes_memory_size >= 128 && var.db_changes_memory_size <= 10240
    error_message = "The db_changes_memory_size must be between 128 and 10240."
  }
}
