#!/bin/sh
# Install the Debian packages vmsync needs to build and test, when missing.
# As root: apt-get installs them.  Otherwise: print the apt-get line and go
# on (the build or a test that needs a missing tool says so itself).
set -eu

PKGS="gcc make pkg-config libc6-dev libpopt-dev libxxhash-dev libcmocka-dev
      zlib1g-dev libzstd-dev libbtrfsutil-dev qemu-system-common fuse3 snapper
      openssh-server openssh-client
      qemu-utils btrfs-progs e2fsprogs mount util-linux diffutils jq
      groff-base man-db procps time python3 systemd xfsprogs strace
      libarchive-dev libarchive-tools tar zstd xz-utils libnbd-dev
      debhelper dpkg-dev fakeroot lintian valgrind"

# Arguments, if any, replace the list (make fuzz asks for its compiler).
[ $# -gt 0 ] && PKGS="$*"
missing=
for p in $PKGS; do
	st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case "$st" in
	*" installed") ;;
	*) missing="$missing $p" ;;
	esac
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
	echo "vmsync: missing packages; run as root:" >&2
	echo "  apt-get install -y$missing" >&2
	exit 0
fi
echo "deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
