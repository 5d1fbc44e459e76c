# Inputs shared by every test file (terraform test reads terraform.tfvars in the
# tests directory). A file's own variables block, then a run's, take precedence.
name             = "rt-test"
lambda_code_zip  = "tests/fixtures/lambda.zip"
lambda_layer_zip = "tests/fixtures/lambda.zip"
# Used only by the runs in jwks mode.
lambda_jwks_layer_zip = "tests/fixtures/lambda.zip"
token = {
  secret_ssm_parameter_name = "/rt-test/token-secret"
  issuer                    = "https://auth.rt-test.example/"
  audience                  = "rt-test"
}
