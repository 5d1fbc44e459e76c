################################################################################
# Token verification (var.token): the token section of the settings of
# ws-connect and events-api (realtime.core.settings.TokenSettings), and read
# access to the token secret, which the module never creates or outputs
################################################################################

locals {
  # A null value leaves the variable out: the secret source not used, the JWKS URL in hs256 mode.
  token_environment = {
    TOKEN_MODE                 = var.token.mode
    TOKEN_SECRET_SSM_PARAMETER = var.token.secret_ssm_parameter_name
    TOKEN_SECRET_ARN           = var.token.secret_arn
    TOKEN_JWKS_URL             = var.token.jwks_url
    TOKEN_ISSUER               = var.token.issuer
    TOKEN_AUDIENCE             = var.token.audience
    TOKEN_MAX_LIFETIME_SECONDS = tostring(var.token.max_lifetime_seconds)
  }

  token_ssm_parameter_arn = (
    var.token.secret_ssm_parameter_name == null ? null
    : "arn:${local.partition}:ssm:${local.region}:${local.account_id}:parameter/${trimprefix(var.token.secret_ssm_parameter_name, "/")}"
  )

  token_statements = concat(
    local.token_ssm_parameter_arn == null ? [] : [{
      sid       = "ReadTokenSecretParameter"
      actions   = ["ssm:GetParameter"]
      resources = [local.token_ssm_parameter_arn]
    }],
    var.token.secret_arn == null ? [] : [{
      sid       = "ReadTokenSecret"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = [var.token.secret_arn]
    }],
    var.token.kms_key_arn == null ? [] : [{
      sid       = "DecryptTokenSecret"
      actions   = ["kms:Decrypt"]
      resources = [var.token.kms_key_arn]
    }],
  )
}
