#!/usr/bin/env bash
# Installs, from Debian's packages, the system tools that the deployment tests
# and measurements need, when they are missing (a fresh CI machine has none):
#
#   scripts/install-deps.sh container   # buildah, podman, debootstrap, uidmap
#                                       #   (skipped when a Docker engine answers)
#   scripts/install-deps.sh nginx       # nginx (the scale-out test)
#   scripts/install-deps.sh bench       # wrk, libjemalloc2 (allocator measurement)
#   scripts/install-deps.sh exiftool    # exiftool (the rights metadata tests)
#
# Idempotent and quiet when everything is there. Needs root or sudo to install;
# without either it says what is missing and exits 1.
set -euo pipefail

need() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]; }

packages=()
for group in "$@"; do
  case "$group" in
    container)
      if need docker && timeout 10 docker info >/dev/null 2>&1; then
        continue  # a Docker engine builds and runs the image itself
      fi
      need buildah || packages+=(buildah)
      # Without a Docker engine the image is built with buildah on a base
      # made with debootstrap and imported with `podman import` (buildah has
      # no import command).
      need podman || packages+=(podman)
      need debootstrap || packages+=(debootstrap)
      need newuidmap || packages+=(uidmap)
      ;;
    nginx)
      need nginx || packages+=(nginx)
      ;;
    exiftool)
      need exiftool || packages+=(libimage-exiftool-perl)
      ;;
    bench)
      need wrk || packages+=(wrk)
      ldconfig -p 2>/dev/null | grep -q 'libjemalloc\.so\.2' || packages+=(libjemalloc2)
      ;;
    *)
      echo "usage: $0 [container] [nginx] [bench] [exiftool]" >&2
      exit 2
      ;;
  esac
done

[ ${#packages[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  sudo=(sudo -n)
else
  echo "$0: missing ${packages[*]}; install them (apt-get install ${packages[*]}) or run as root" >&2
  exit 1
fi

echo "installing from Debian's packages: ${packages[*]}"
# Installing nginx must not start a system nginx on port 80: tell invoke-rc.d
# that no service may start during this install (Docker images do the same).
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
  "${sudo[@]}" chmod 755 "$policy"
  trap '"${sudo[@]}" rm -f "$policy"' EXIT
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
echo "installed: ${packages[*]}"
