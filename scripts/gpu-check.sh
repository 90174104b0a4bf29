#!/usr/bin/env bash
# The GPU check in one command (docs/training.md, "GPU check"). On a machine with one
# CUDA GPU (an H100: under 8 minutes with uv, most of it the install), from the repository root:
#   1. installs what it needs into its own virtualenv ($GPU_CHECK_VENV, default .venv-gpu,
#      reused when present): verl 0.9.1 with its vllm extra, which pins torch, vLLM and
#      transformers to a tested set, and codedance with the train, hf, tools, rewards and
#      dev extras; uv when it is on PATH (much faster), else pip;
#   2. runs the vLLM backend test on the tiny random Qwen2.5-VL (tests/tiny_vlm.py):
#      tests/test_model_vllm.py -m gpu;
#   3. runs one GRPO step with vLLM rollouts on the same tiny model: tests/test_train_gpu.py;
#   4. prints one verdict line, "gpu-check: PASS|FAIL|NO GPU ...".
# A GPU test that skips counts as a failure: a check that did not run proves nothing.
#
# Usage: scripts/gpu-check.sh [--dry-run] [--no-install] [-h]
#   --dry-run     detect the GPU and print every command it would run; run nothing
#   --no-install  use the virtualenv (or $GPU_CHECK_PYTHON) as it is
# Environment: PYTHON (makes the virtualenv; python3), GPU_CHECK_VENV, GPU_CHECK_PYTHON (an
#   interpreter to test with instead of the virtualenv's), NVIDIA_SMI (nvidia-smi).
# Exit status: 0 pass; 1 a check failed or skipped; 2 bad usage; 3 no GPU (nothing was run).
set -uo pipefail
cd "$(dirname "$0")/.."

DRY=0 INSTALL=1
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY=1 ;;
    --no-install) INSTALL=0 ;;
    -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu-check: unknown option '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

VENV="${GPU_CHECK_VENV:-.venv-gpu}"
VPY="${GPU_CHECK_PYTHON:-$VENV/bin/python}"
PINS=("verl[vllm]==0.9.1" "tensordict==0.10.0")  # tensordict: verl resolves slowly without it
EXTRAS=".[train,hf,tools,rewards,dev]"
LIMIT_INSTALL=600 LIMIT_VLLM=180 LIMIT_STEP=360  # seconds, each a hard cap (uv installs in ~2 min)
STARTED=$SECONDS
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT

verdict() {  # verdict STATUS DETAIL EXIT_CODE
  echo "gpu-check: $1 ($2; $((SECONDS - STARTED)) s${GPU:+ on $GPU})"
  exit "$3"
}

run() {  # run LABEL SECONDS CMD...: the command, or its echo under --dry-run
  local label="$1" limit="$2"; shift 2
  if [ "$DRY" = 1 ]; then echo "would run [$label, <= ${limit}s]: $*"; return 0; fi
  echo "== $label (<= ${limit}s): $*"
  timeout --kill-after=20 "$limit" "$@"
}

# 1. A GPU, or a clear verdict that there is none.
GPU="$("${NVIDIA_SMI:-nvidia-smi}" --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null \
  | head -n 1)"
if [ -z "$GPU" ]; then
  GPU=""
  verdict "NO GPU" "${NVIDIA_SMI:-nvidia-smi} lists no CUDA device; nothing was run" 3
fi
echo "gpu-check: found $GPU"

# 2. Install.
if [ "$INSTALL" = 1 ] && [ -z "${GPU_CHECK_PYTHON:-}" ]; then
  if command -v uv >/dev/null 2>&1; then
    [ -x "$VPY" ] || run "virtualenv" 60 uv venv --python "${PYTHON:-python3}" "$VENV" \
      || verdict FAIL "could not create $VENV" 1
    run "install" "$LIMIT_INSTALL" uv pip install --python "$VPY" "${PINS[@]}" -e "$EXTRAS" \
      || verdict FAIL "install failed or ran over ${LIMIT_INSTALL}s (uv pip install ${PINS[*]} -e $EXTRAS)" 1
  else
    [ -x "$VPY" ] || run "virtualenv" 60 "${PYTHON:-python3}" -m venv "$VENV" \
      || verdict FAIL "could not create $VENV" 1
    run "install" "$LIMIT_INSTALL" "$VPY" -m pip install -q --disable-pip-version-check \
      "${PINS[@]}" -e "$EXTRAS" \
      || verdict FAIL "install failed or ran over ${LIMIT_INSTALL}s (pip install ${PINS[*]} -e $EXTRAS)" 1
  fi
fi

if [ "$DRY" = 0 ] && [ ! -x "$VPY" ]; then
  verdict FAIL "no interpreter at $VPY; run without --no-install or set GPU_CHECK_PYTHON" 1
fi

# 3. The two GPU tests; each must run and pass, none may skip.
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
check() {  # check NAME LIMIT TEST_FILE
  run "$1" "$2" "$VPY" -m pytest "$3" -m gpu -q -p no:cacheprovider --junitxml="$OUT/$1.xml" \
    || return 1
  [ "$DRY" = 1 ] && return 0
  "$VPY" - "$OUT/$1.xml" <<'EOF'
import sys
import xml.etree.ElementTree as ET

suite = ET.parse(sys.argv[1]).getroot()
suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
counts = {key: int(suite.get(key, 0)) for key in ("tests", "failures", "errors", "skipped")}
print("junit:", counts)
bad = counts["failures"] + counts["errors"] + counts["skipped"]
sys.exit(0 if counts["tests"] > 0 and bad == 0 else 1)
EOF
}
FAILED=()
check vllm-backend "$LIMIT_VLLM" tests/test_model_vllm.py || FAILED+=("vLLM backend test")
check grpo-step "$LIMIT_STEP" tests/test_train_gpu.py || FAILED+=("GRPO step with vLLM rollouts")

if [ "$DRY" = 1 ]; then
  verdict "DRY RUN" "would install into $VENV, then run the vLLM backend test and one GRPO step" 0
fi
if [ "${#FAILED[@]}" -gt 0 ]; then
  verdict FAIL "failed or skipped: $(IFS=,; echo "${FAILED[*]}")" 1
fi
verdict PASS "vLLM backend test and one GRPO step with vLLM rollouts passed" 0
