#!/usr/bin/env bash
# Installs what FlashRT builds and tests with, from Debian's packages (idempotent: installs only
# what is missing). Used by the README's two commands and by .ci/run.
set -euo pipefail
PKGS=(cmake g++ make pkg-config libopenblas-dev libsentencepiece-dev libstb-dev
      nlohmann-json3-dev libgtest-dev python3 python3-numpy python3-pytest python3-torch
      python3-sentencepiece)
missing=()
for p in "${PKGS[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "[install_deps] installing: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
