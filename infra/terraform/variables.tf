variable "region" {
  description = "AWS region of the bucket and roles, e.g. eu-central-1."
  type        = string
}

variable "bucket_name" {
  description = "Globally unique name of the bucket that holds the Zarr cubes."
  type        = string
}

variable "cube_prefix" {
  description = "Key prefix of the cubes inside the bucket (no leading or trailing slash). The writer role is limited to it."
  type        = string
  default     = "cubes"
  validation {
    condition     = can(regex("^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$", var.cube_prefix))
    error_message = "cube_prefix must be a key prefix like \"cubes\" or \"cubes/kz\", without leading/trailing slashes or wildcards."
  }
}

variable "scratch_prefix" {
  description = "Prefix for temporary objects; expired after scratch_expiration_days."
  type        = string
  default     = "scratch"
}

variable "scratch_expiration_days" {
  description = "Days after which objects under scratch_prefix are deleted."
  type        = number
  default     = 7
}

variable "noncurrent_version_expiration_days" {
  description = "Days a replaced chunk version is kept (versioning protects against bad reruns)."
  type        = number
  default     = 30
}

variable "oidc_provider_arn" {
  description = "ARN of the EKS cluster's IAM OIDC provider, e.g. arn:aws:iam::111122223333:oidc-provider/oidc.eks.eu-central-1.amazonaws.com/id/EXAMPLE."
  type        = string
}

variable "oidc_provider_url" {
  description = "Issuer of that provider without https://, e.g. oidc.eks.eu-central-1.amazonaws.com/id/EXAMPLE."
  type        = string
}

variable "namespace" {
  description = "Kubernetes namespace of the Ray pods (infra/k8s)."
  type        = string
  default     = "harvest"
}

variable "writer_service_account" {
  description = "Service account of the Ray head, workers and RayJob submitter (infra/k8s/serviceaccount.yaml)."
  type        = string
  default     = "harvest-ray"
}

variable "reader_service_account" {
  description = "Service account of notebook pods that only read cubes."
  type        = string
  default     = "harvest-notebook"
}

variable "tags" {
  description = "Tags on every resource."
  type        = map(string)
  default     = { project = "harvest-cluster" }
}
