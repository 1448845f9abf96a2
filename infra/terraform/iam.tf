# Least-privilege roles for the Ray pods (writer) and notebooks (reader), assumed via
# IRSA: only the named Kubernetes service account of the named namespace can assume each.

locals {
  cube_objects = "${aws_s3_bucket.cubes.arn}/${var.cube_prefix}/*"
}

data "aws_iam_policy_document" "writer_trust" {
  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = [var.oidc_provider_arn]
    }
    condition {
      test     = "StringEquals"
      variable = "${var.oidc_provider_url}:sub"
      values   = ["system:serviceaccount:${var.namespace}:${var.writer_service_account}"]
    }
    condition {
      test     = "StringEquals"
      variable = "${var.oidc_provider_url}:aud"
      values   = ["sts.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "reader_trust" {
  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = [var.oidc_provider_arn]
    }
    condition {
      test     = "StringEquals"
      variable = "${var.oidc_provider_url}:sub"
      values   = ["system:serviceaccount:${var.namespace}:${var.reader_service_account}"]
    }
    condition {
      test     = "StringEquals"
      variable = "${var.oidc_provider_url}:aud"
      values   = ["sts.amazonaws.com"]
    }
  }
}

# Writer: list the cube prefix; read/write/delete objects under it (mode="w" and reruns
# delete, s3fs uses multipart uploads for large chunks); use the bucket key through S3.
data "aws_iam_policy_document" "writer" {
  statement {
    sid       = "ListCubePrefix"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.cubes.arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = [var.cube_prefix, "${var.cube_prefix}/*"]
    }
  }
  statement {
    sid       = "ReadWriteCubeObjects"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"]
    resources = [local.cube_objects]
  }
  statement {
    sid       = "UseBucketKeyViaS3"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = [aws_kms_key.cubes.arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${var.region}.amazonaws.com"]
    }
  }
}

# Reader: list and get under the cube prefix, nothing else.
data "aws_iam_policy_document" "reader" {
  statement {
    sid       = "ListCubePrefix"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.cubes.arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = [var.cube_prefix, "${var.cube_prefix}/*"]
    }
  }
  statement {
    sid       = "ReadCubeObjects"
    actions   = ["s3:GetObject"]
    resources = [local.cube_objects]
  }
  statement {
    sid       = "DecryptViaS3"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.cubes.arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${var.region}.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "writer" {
  name                 = "${var.bucket_name}-writer"
  description          = "Ray pods of harvest-cluster: read/write Zarr cubes under s3://${var.bucket_name}/${var.cube_prefix}/"
  assume_role_policy   = data.aws_iam_policy_document.writer_trust.json
  max_session_duration = 3600
}

resource "aws_iam_role_policy" "writer" {
  name   = "cube-writer"
  role   = aws_iam_role.writer.id
  policy = data.aws_iam_policy_document.writer.json
}

resource "aws_iam_role" "reader" {
  name                 = "${var.bucket_name}-reader"
  description          = "Notebooks: read-only access to Zarr cubes under s3://${var.bucket_name}/${var.cube_prefix}/"
  assume_role_policy   = data.aws_iam_policy_document.reader_trust.json
  max_session_duration = 3600
}

resource "aws_iam_role_policy" "reader" {
  name   = "cube-reader"
  role   = aws_iam_role.reader.id
  policy = data.aws_iam_policy_document.reader.json
}

# For the Ray cluster launcher on EC2 (infra/ray-cluster-aws.yaml): the same writer
# permissions through an instance profile, instead of the launcher's default
# AmazonEC2FullAccess + AmazonS3FullAccess.
data "aws_iam_policy_document" "ec2_trust" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "node" {
  name               = "${var.bucket_name}-ray-node"
  description        = "EC2 Ray nodes of harvest-cluster (cluster launcher): cube writer permissions only"
  assume_role_policy = data.aws_iam_policy_document.ec2_trust.json
}

resource "aws_iam_role_policy" "node" {
  name   = "cube-writer"
  role   = aws_iam_role.node.id
  policy = data.aws_iam_policy_document.writer.json
}

resource "aws_iam_instance_profile" "node" {
  name = "${var.bucket_name}-ray-node"
  role = aws_iam_role.node.name
}
