output "bucket_name" {
  description = "Bucket holding the cubes."
  value       = aws_s3_bucket.cubes.bucket
}

output "cube_uri_prefix" {
  description = "Where jobs write cubes: use s3://<this>/<cube> as cube_uri."
  value       = "s3://${aws_s3_bucket.cubes.bucket}/${var.cube_prefix}"
}

output "writer_role_arn" {
  description = "Annotate the Ray service account with it (eks.amazonaws.com/role-arn)."
  value       = aws_iam_role.writer.arn
}

output "reader_role_arn" {
  description = "Annotate the notebook service account with it, or assume it from a laptop."
  value       = aws_iam_role.reader.arn
}

output "node_instance_profile_arn" {
  description = "node_config.IamInstanceProfile.Arn for infra/ray-cluster-aws.yaml."
  value       = aws_iam_instance_profile.node.arn
}

output "kms_key_arn" {
  description = "Key that encrypts the bucket."
  value       = aws_kms_key.cubes.arn
}
