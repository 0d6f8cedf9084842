# Packer template of the Camut drone image (an AMI): a current Ubuntu LTS with the
# `camut` binary, the camut-drone systemd unit, an open-file limit of 1,000,000 and
# network sysctls for many concurrent connections. See ami/README.md.
#
#     packer build -var camut_binary=../target/release/camut ami/camut-drone.pkr.hcl

variable "region" {
  type        = string
  default     = "us-east-1"
  description = "Region the image is built in (copy it to others with aws ec2 copy-image)."
}

variable "instance_type" {
  type        = string
  default     = "t3.small"
  description = "Instance type of the temporary build instance."
}

variable "camut_binary" {
  type        = string
  default     = "../target/release/camut"
  description = "The camut binary (Linux x86_64) installed in the image."
}

variable "ubuntu_release" {
  type        = string
  default     = "noble-24.04"
  description = "Ubuntu LTS release in Canonical's image names."
}

locals {
  timestamp = regex_replace(timestamp(), "[- TZ:]", "")
}

source "amazon-ebs" "drone" {
  region        = var.region
  instance_type = var.instance_type
  ssh_username  = "ubuntu"
  ami_name      = "camut-drone-${local.timestamp}"
  source_ami_filter {
    filters = {
      name                = "ubuntu/images/hvm-ssd-gp3/ubuntu-${var.ubuntu_release}-amd64-server-*"
      root-device-type    = "ebs"
      virtualization-type = "hvm"
    }
    owners      = ["099720477866"]
    most_recent = true
  }
  tags = {
    "Name"          = "camut-drone"
    "camut:image"   = "drone"
    "camut:release" = var.ubuntu_release
  }
}

build {
  sources = ["source.amazon-ebs.drone"]

  provisioner "file" {
    source      = var.camut_binary
    destination = "/tmp/camut"
  }

  provisioner "file" {
    source      = "${path.root}/../deploy/systemd/camut-drone.service"
    destination = "/tmp/camut-drone.service"
  }

  provisioner "file" {
    source      = "${path.root}/files/"
    destination = "/tmp"
  }

  provisioner "shell" {
    execute_command = "sudo sh -c '{{ .Vars }} {{ .Path }}'"
    scripts = [
      "${path.root}/scripts/install-camut.sh",
      "${path.root}/scripts/tune-network.sh",
    ]
  }
}
