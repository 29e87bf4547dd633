#!/usr/bin/env bash
# Debian packages the tests and benchmarks use as real parts: Redis (the Celery broker of the
# distributed executor), Chromium (headless browser tests) and nginx-light (the web server of the
# ingestion benchmark). Installs only what is missing; needs root or
# sudo on a Debian/Ubuntu machine, and says what to install by hand otherwise.
set -euo pipefail

declare -A wanted=([redis-server]=redis-server [chromium]=chromium [nginx]=nginx-light)
missing=()
for cmd in "${!wanted[@]}"; do
  # nginx lives in /usr/sbin, off a plain user's PATH
  command -v "$cmd" >/dev/null 2>&1 || [[ -x /usr/sbin/$cmd ]] || missing+=("${wanted[$cmd]}")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install_system_packages: please install ${missing[*]} (no apt-get here)" >&2
  exit 0
fi
sudo=""
[[ $(id -u) -ne 0 ]] && sudo="sudo -n"
echo "install_system_packages: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
  "${missing[@]}" >/dev/null
