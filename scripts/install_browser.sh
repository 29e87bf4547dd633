#!/usr/bin/env bash
# Debian's Chromium for the browser tests (driven by Playwright for Python, which is told where it
# is; Playwright's own browser download is never used). Idempotent: does nothing when
# /usr/bin/chromium is there. Needs root (or sudo) for apt-get.
set -euo pipefail
if [[ -x /usr/bin/chromium ]]; then
  exit 0
fi
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
echo "lenslab set-up: installing chromium (apt-get)"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
/usr/bin/chromium --version
