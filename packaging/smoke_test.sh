#!/usr/bin/env bash
# Smoke-test an INSTALLED (or unpacked) Llama Desk: run its --self-test with a screenshot and check
# what it reports. The same script runs on every CI runner and here.
#
# Usage: packaging/smoke_test.sh [OUT_DIR] [-- COMMAND...]
#   COMMAND defaults to `llama-desk` (the .deb's /usr/bin/llama-desk); an AppImage, the onedir's
#   executable or `open -W ...` wrappers work too. OUT_DIR (default: ./smoke-out) receives
#   self-test.txt and window.png.
# Environment:
#   EXPECT_BACKEND      a backend the build must have compiled in (CPU, CUDA, Metal, Vulkan)
#   EXPECT_LIB_PREFIX   llama.cpp's libraries must be loaded from under this folder (e.g. /opt/llama-desk)
# Linux without $DISPLAY runs under xvfb-run (apt-get install xvfb libxcb-cursor0 ...).
set -euo pipefail

OUT="${1:-smoke-out}"
[[ $# -gt 0 ]] && shift
[[ "${1:-}" == "--" ]] && shift
if [[ $# -gt 0 ]]; then COMMAND=("$@"); else COMMAND=(llama-desk); fi
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
REPORT="$OUT/self-test.txt"
SHOT="$OUT/window.png"
rm -f "$REPORT" "$SHOT"

RUN=()
if [[ "$(uname -s)" == Linux && -z "${DISPLAY:-}" && -z "${WAYLAND_DISPLAY:-}" ]]; then
    command -v xvfb-run > /dev/null || { echo "smoke: no display and no xvfb-run" >&2; exit 2; }
    RUN=(xvfb-run -a -s "-screen 0 1280x800x24")
fi

fail() { echo "smoke: FAILED: $*" >&2; cat "$REPORT" >&2 || true; exit 1; }

PY="$(command -v python3 || command -v python)"  # Windows runners have no python3
now() { "$PY" -c 'import time; print(f"{time.time():.2f}")'; }
start=$(now)
status=0
${RUN[@]+"${RUN[@]}"} "${COMMAND[@]}" --self-test --screenshot "$SHOT" > "$REPORT" 2>&1 || status=$?
elapsed=$("$PY" -c "print(f'{$(now) - $start:.1f}')")
[[ $status == 0 ]] || fail "--self-test exited with $status"
grep -q '^self-test: OK' "$REPORT" || fail "no 'self-test: OK' line"
grep -q '^backend: ' "$REPORT" || fail "no backend line"
grep -Eq '^generated [1-9][0-9]* tokens' "$REPORT" || fail "no tokens generated"
grep -q '^window: replied' "$REPORT" || fail "the window did not answer"
[[ -s "$SHOT" ]] || fail "no screenshot at $SHOT"
[[ "$(head -c 8 "$SHOT" | od -An -tx1 | tr -d ' \n')" == 89504e470d0a1a0a ]] || fail "$SHOT is not a PNG"
if [[ -n "${EXPECT_BACKEND:-}" ]]; then
    grep -Eq "^llama.cpp backends compiled in: .*\b${EXPECT_BACKEND}\b" "$REPORT" ||
        fail "the build has no ${EXPECT_BACKEND} backend"
fi
if [[ -n "${EXPECT_LIB_PREFIX:-}" ]]; then
    libs=$(grep -E '^library: .*(libllama|llama\.dll)' "$REPORT" || true)
    [[ -n "$libs" ]] || fail "libllama is not among the loaded libraries"
    grep -Evq "^library: ${EXPECT_LIB_PREFIX}" <<< "$libs" && fail "libllama loaded from outside $EXPECT_LIB_PREFIX"
fi
grep -E '^(backend|llama\.cpp backends|model|generated|qt|window|startup|self-test)' "$REPORT"
echo "smoke: OK (${elapsed} s wall, screenshot $SHOT)"
