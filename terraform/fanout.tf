################################################################################
# Fan-out: large audiences in pages, and retried posts
#
# process-events posts the first fanout_threshold connections of each topic
# itself and queues a job for the rest; the fanout function posts one page of
# fanout_page_size connections per job, queueing the next page first so pages
# are posted in parallel. Posts that failed transiently come back as delayed
# retry jobs on the same queue (see realtime/events/fanout.py). Its DLQ and
# alarms are in sqs.tf and monitoring.tf, the function and its permissions in
# main.tf.
################################################################################

resource "aws_sqs_queue" "fanout" {
  name = "${var.name}-fanout"

  visibility_timeout_seconds = 6 * var.process_events_timeout
  message_retention_seconds  = 86400 # a day-old job is stale: its clients have caught up over HTTP
  receive_wait_time_seconds  = 20

  sqs_managed_sse_enabled           = var.kms_key_arn == null ? true : null
  kms_master_key_id                 = var.kms_key_arn
  kms_data_key_reuse_period_seconds = var.kms_key_arn == null ? null : 300

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dead_letter["fanout-dlq"].arn
    maxReceiveCount     = var.events_queue_max_receive_count
  })

  tags = merge(var.tags, { Name = "${var.name}-fanout" })
}

resource "aws_lambda_event_source_mapping" "fanout" {
  event_source_arn = aws_sqs_queue.fanout.arn
  function_name    = aws_lambda_function.this["fanout"].arn

  # One job (one page) per invocation: pages are posted by parallel invocations.
  batch_size              = 1
  function_response_types = ["ReportBatchItemFailures"]

  scaling_config {
    maximum_concurrency = var.fanout_maximum_concurrency
  }

  tags = merge(var.tags, { Name = "${var.name}-fanout" })
}
