#!/usr/bin/env bash
# Installs what FlashRT builds and tests with, from Debian's packages (idempotent: installs only
# what is missing). Used by the README's two commands and by .ci/run.
set -euo pipefail
PKGS=(cmake g++ make pkg-config libopenblas-dev libsentencepiece-dev libstb-dev
      nlohmann-json3-dev libgtest-dev python3 python3-numpy python3-pytest python3-torch
      python3-sentencepiece
      python3-pil  # the reference self-check's PIL resize variant (openpi's other resize path)
      libboost-dev libmsgpack-cxx-dev  # flashrt serve: Boost.Beast/Asio, msgpack-cxx (headers)
      python3-pip python3-requests python3-msgpack python3-typing-extensions)  # server tests
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

# The server tests drive `flashrt serve` with openpi's real client from PyPI. Only the modules
# they use are needed: websocket_client_policy (websockets >= 11 for websockets.sync: Debian
# 12 has 10.4, so that one comes from PyPI too), msgpack_numpy (python3-msgpack) and
# base_policy; hence --no-deps (dm-tree, pillow are for modules the tests do not import).
# Installed for /usr/bin/python3 (Debian's, externally managed), pinned, only when missing.
PY=/usr/bin/python3
PIP_PKGS=("openpi-client==0.1.2" "websockets==13.1")
if ! "$PY" -c '
import importlib.metadata as m, sys
for spec in sys.argv[1:]:
    name, version = spec.split("==")
    assert m.version(name) == version, spec
' "${PIP_PKGS[@]}" 2>/dev/null; then
  echo "[install_deps] pip installing for $PY: ${PIP_PKGS[*]}"
  PIP_ARGS=(-q --disable-pip-version-check --break-system-packages --no-deps)
  if [ "$(id -u)" -eq 0 ]; then
    "$PY" -m pip install "${PIP_ARGS[@]}" --root-user-action=ignore "${PIP_PKGS[@]}"
  else
    "$PY" -m pip install "${PIP_ARGS[@]}" --user "${PIP_PKGS[@]}"
  fi
fi
