terraform {
  required_version = ">= 1.7"

  required_providers {
    openstack = {
      source  = "terraform-provider-openstack/openstack"
      version = "~> 3.0"
    }
  }

  # State lives in Chameleon's object store (Ceph RGW, S3-compatible), never on a laptop.
  # bucket, key, region and endpoints.s3 come from infra/site.yaml: `aidetect infra plan` passes them
  # as -backend-config; credentials are EC2 credentials in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.
  backend "s3" {
    use_path_style              = true
    skip_credentials_validation = true
    skip_region_validation      = true
    skip_requesting_account_id  = true
    skip_metadata_api_check     = true
    skip_s3_checksum            = true
  }
}

# Credentials come from the clouds.yaml entry named by var.cloud (see infra/clouds.yaml.example).
provider "openstack" {
  cloud  = var.cloud
  region = var.region
}
