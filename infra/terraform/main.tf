# The bucket for Zarr cubes: private, encrypted with a project KMS key, versioned,
# with lifecycle rules so that overwritten chunks and failed uploads do not pile up.

data "aws_caller_identity" "current" {}

resource "aws_kms_key" "cubes" {
  description             = "Encrypts the harvest cube bucket"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.kms_cubes.json
}

resource "aws_kms_alias" "cubes" {
  name          = "alias/${var.bucket_name}"
  target_key_id = aws_kms_key.cubes.key_id
}

# Key administration stays with the account; S3 use of the key is granted to the
# roles below through their IAM policies (kms:ViaService keeps it to S3).
data "aws_iam_policy_document" "kms_cubes" {
  # checkov:skip=CKV_AWS_111:This is a KMS key policy: its Resource "*" means the key itself, and the only principal is the owning account.
  # checkov:skip=CKV_AWS_356:KMS key policies must use Resource "*" (the key the policy is attached to).
  # checkov:skip=CKV_AWS_109:Key administration by the owning account root is the AWS default key policy; without it the key becomes unmanageable.
  statement {
    sid       = "AccountAdministersKey"
    actions   = ["kms:Create*", "kms:Describe*", "kms:Enable*", "kms:List*", "kms:Put*", "kms:Update*", "kms:Revoke*", "kms:Disable*", "kms:Get*", "kms:Delete*", "kms:TagResource", "kms:UntagResource", "kms:ScheduleKeyDeletion", "kms:CancelKeyDeletion", "kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*"]
    resources = ["*"] # in a key policy, "*" means this key
    principals {
      type        = "AWS"
      identifiers = ["arn:aws:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }
}

resource "aws_s3_bucket" "cubes" {
  # checkov:skip=CKV_AWS_18:Access logs go to the organisation's central log bucket, configured outside this module.
  # checkov:skip=CKV_AWS_144:Cross-region replication is a per-deployment cost decision; cubes are reproducible from the scenes.
  # checkov:skip=CKV2_AWS_62:No consumer of S3 event notifications; jobs record what they wrote in their reports.
  bucket = var.bucket_name
}

resource "aws_s3_bucket_public_access_block" "cubes" {
  bucket                  = aws_s3_bucket.cubes.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "cubes" {
  bucket = aws_s3_bucket.cubes.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_versioning" "cubes" {
  bucket = aws_s3_bucket.cubes.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "cubes" {
  bucket = aws_s3_bucket.cubes.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.cubes.arn
    }
    bucket_key_enabled = true # one KMS call per bucket key, not per chunk
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "cubes" {
  bucket = aws_s3_bucket.cubes.id

  rule {
    id     = "abort-incomplete-multipart-uploads"
    status = "Enabled"
    filter {}
    abort_incomplete_multipart_upload {
      days_after_initiation = 2
    }
  }

  rule {
    id     = "expire-noncurrent-versions"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_expiration_days
    }
  }

  rule {
    id     = "expire-scratch"
    status = "Enabled"
    filter {
      prefix = "${var.scratch_prefix}/"
    }
    expiration {
      days = var.scratch_expiration_days
    }
  }

  depends_on = [aws_s3_bucket_versioning.cubes]
}

# Deny plain-HTTP access to the bucket.
resource "aws_s3_bucket_policy" "cubes" {
  bucket = aws_s3_bucket.cubes.id
  policy = data.aws_iam_policy_document.bucket_tls_only.json
}

data "aws_iam_policy_document" "bucket_tls_only" {
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket"]
    resources = [aws_s3_bucket.cubes.arn, "${aws_s3_bucket.cubes.arn}/*"]
    principals {
      type        = "AWS"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}
