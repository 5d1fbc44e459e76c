################################################################################
# Presence
################################################################################

locals {
  # Functions of this feature, merged into local.functions (see main.tf).
  presence_functions           = {}
  presence_function_statements = {}
}
