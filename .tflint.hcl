# tflint configuration (https://github.com/terraform-linters/tflint)
#   tflint --init && tflint --chdir=terraform --recursive

config {
  call_module_type = "local"
}

plugin "terraform" {
  enabled = true
  preset  = "recommended"
}

plugin "aws" {
  enabled = true
  version = "0.38.0"
  source  = "github.com/terraform-linters/tflint-ruleset-aws"
}

# terraform-aws-modules conventions
rule "terraform_documented_variables" {
  enabled = true
}

rule "terraform_documented_outputs" {
  enabled = true
}

rule "terraform_naming_convention" {
  enabled = true
}

rule "terraform_standard_module_structure" {
  enabled = false # the module is split by feature (events.tf, fanout.tf, presence.tf, ...) for readability
}
