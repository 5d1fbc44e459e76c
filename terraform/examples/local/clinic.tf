################################################################################
# The application's own table (the telemedicine case): its changes become events
#
#   doctor profile: pk = doctor#<doctorId>, sk = profile
#                   doctorId, name, specialty, clinicIds (string set), online (bool), phone (private)
#   assignment:     pk = doctor#<doctorId>, sk = patient#<patientId>
#                   doctorId, doctorName, patientId, assignedAt
#
# The application sets `online` when a doctor starts or ends a shift, and
# writes or deletes assignment items; it writes no event code. Patients'
# tokens grant `presence:<doctorId>` for each doctor assigned to them, and
# clinic staff belong to the group of their clinic.
################################################################################

resource "aws_dynamodb_table" "clinic" {
  #checkov:skip=CKV_AWS_119:Local emulator only; the complete example encrypts its clinic table with a customer managed key.

  name         = "${var.name}-clinic"
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "pk"
  range_key    = "sk"

  attribute {
    name = "pk"
    type = "S"
  }

  attribute {
    name = "sk"
    type = "S"
  }

  # Old and new images: the rules compare `online` before and after, and read removed assignments.
  stream_enabled   = true
  stream_view_type = "NEW_AND_OLD_IMAGES"

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled = true
  }

  tags = {
    Environment = "local"
  }
}

locals {
  clinic_db_changes_sources = [{
    name       = "clinic"
    stream_arn = aws_dynamodb_table.clinic.stream_arn
    batch_size = 100 # the emulator's default differs from AWS's: set it explicitly

    rules = [
      {
        # A doctor starting a shift: their patients (watching presence:<doctorId>) and their clinics' staff.
        name              = "doctor-online"
        event_type        = "doctor.online"
        kinds             = ["INSERT", "MODIFY"]
        when              = { attribute = "online", becomes = { BOOL = true } }
        audience          = ["presence:{doctorId}", "group:{clinicIds}"]
        list_placeholders = ["clinicIds"] # a string set: one topic per clinic
        data              = ["doctorId", "name", "specialty"]
      },
      {
        name              = "doctor-offline"
        event_type        = "doctor.offline"
        kinds             = ["MODIFY"]
        when              = { attribute = "online", becomes = { BOOL = false } }
        audience          = ["presence:{doctorId}", "group:{clinicIds}"]
        list_placeholders = ["clinicIds"]
        data              = ["doctorId", "name"]
      },
      {
        # Only assignment items have a patientId, so doctor profiles never fire these two.
        name       = "patient-assigned"
        event_type = "care.doctor_assigned"
        kinds      = ["INSERT"]
        when       = { attribute = "patientId" }
        audience   = ["user:{patientId}"]
        data       = ["doctorId", "doctorName", "patientId"]
      },
      {
        name       = "patient-unassigned"
        event_type = "care.doctor_unassigned"
        kinds      = ["REMOVE"]
        when       = { attribute = "patientId" }
        audience   = ["user:{patientId}"]
        data       = ["doctorId", "patientId"]
      },
    ]
  }]
}
