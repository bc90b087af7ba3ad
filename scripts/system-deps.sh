#!/usr/bin/env bash
# Installs the system packages the tests use: a PostgreSQL server (the database tests start a
# throwaway cluster) and Chromium + ChromeDriver (the worker-page tests drive headless Chromium).
# Debian/Ubuntu with apt-get; as root or with sudo. Does nothing when they are already there.
set -euo pipefail
need=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -x /usr/bin/chromedriver ] || need+=(chromium-driver)
[ ${#need[@]} -eq 0 ] && { echo "system-deps: postgresql and chromium present"; exit 0; }
if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else
  echo "system-deps: please install: ${need[*]} (apt-get install -y ${need[*]})" >&2; exit 1; fi
echo "system-deps: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q "${need[@]}"
