################################################################################
# Database changes
################################################################################

locals {
  # Functions of this feature, merged into local.functions (see main.tf).
  db_changes_functions           = {}
  db_changes_function_statements = {}
}
