#!/usr/bin/env bash
# Create ./.venv and install mfnet with everything it needs (CPU or GPU), offline-safe.
# Usage: bash scripts/setup.sh            (re-running is safe and quick)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
"$PY" -c 'import sys; assert sys.version_info >= (3, 11), "mfnet needs Python >= 3.11"'
[ -x .venv/bin/python ] || "$PY" -m venv .venv
PIP=(.venv/bin/python -m pip install -q --disable-pip-version-check)
# torch + torchvision must be a matching pair (PyPI torchvision does not import beside every torch build).
case "$(uname -m)" in
  aarch64|arm64) TORCH=(torch==2.9.1 torchvision==0.24.1) ;;
  *)             TORCH=(torch==2.14.1 torchvision==0.29.1) ;;
esac
"${PIP[@]}" "${TORCH[@]}"
"${PIP[@]}" -e '.[dev]'
# MediaPipe 0.10.21 is the newest release that ships the face-mesh models in its wheel. Its declared pins
# (numpy<2, protobuf<5, jax, opencv-contrib) clash with numpy 2 / OpenCV 5 but it runs correctly with them,
# so install it without dependencies and add the few it really imports.
"${PIP[@]}" --no-deps mediapipe==0.10.21
"${PIP[@]}" absl-py attrs flatbuffers 'protobuf>=4.25.3,<5' matplotlib
# TensorBoard logs for `mfnet train`: 2.17.x is the newest that runs with protobuf < 5 (needed by MediaPipe).
"${PIP[@]}" 'tensorboard==2.17.1' 'protobuf>=4.25.3,<5'
# Second landmark backend (dlib 68-point): prebuilt dlib wheel + the package that ships the predictor file.
"${PIP[@]}" dlib-bin face-recognition-models
.venv/bin/python -c 'import torch, torchvision, cv2, mediapipe, mfnet; print("mfnet set-up OK: torch", torch.__version__, "| CUDA:", torch.cuda.is_available())'
