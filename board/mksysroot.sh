#!/usr/bin/env bash
# board/mksysroot.sh ARCH SYSROOT PKG...: unpack Debian packages of a foreign
# architecture into SYSROOT, for cross-compiling against their headers and
# libraries and for running the result under qemu-user.
#
# Debian's multiarch -dev packages cannot always be co-installed with the
# host's (the architectures' archives drift apart in version), so they are
# not installed: `apt-get download PKG:ARCH` fetches them and `dpkg -x`
# unpacks them. Idempotent: SYSROOT/.tb-sysroot records what it holds.
set -euo pipefail

[ $# -ge 3 ] || { echo "usage: $0 ARCH SYSROOT PKG..." >&2; exit 2; }
arch=$1 sysroot=$2
shift 2
want="v2 $arch: $*" # bump v2 when this script changes what it makes
stamp=$sysroot/.tb-sysroot

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
	exit 0
fi

root=0
[ "$(id -u)" = 0 ] && root=1
as_root() {
	if [ $root = 1 ]; then
		"$@"
	else
		echo "sysroot for $arch needs: sudo $*" >&2
		exit 1
	fi
}

if [ "$(dpkg --print-architecture)" != "$arch" ] &&
	! dpkg --print-foreign-architectures | grep -qx "$arch"; then
	echo "  SYSROOT  dpkg --add-architecture $arch"
	as_root dpkg --add-architecture "$arch"
	as_root apt-get update -qq
elif ! apt-cache show "$1:$arch" >/dev/null 2>&1; then
	as_root apt-get update -qq
fi

echo "  SYSROOT  $sysroot ($arch: $*)"
debs=$sysroot.debs
rm -rf "$debs" "$sysroot"
mkdir -p "$debs" "$sysroot"
download() {
	(cd "$debs" && apt-get download -qq -o APT::Sandbox::User="$(id -un)" "${@/%/:$arch}") >/dev/null
}
if ! download "$@"; then
	# The package lists may be older than the archive: refresh once.
	as_root apt-get update -qq
	download "$@"
fi
for deb in "$debs"/*.deb; do
	dpkg -x "$deb" "$sysroot"
done
rm -rf "$debs"
# Absolute symlinks (usr/lib/T/libz.so -> /lib/T/libz.so.1) would point into
# the host: make them relative, inside the sysroot.
find "$sysroot" -type l -lname '/*' | while read -r link; do
	ln -sfn "$(realpath -m --relative-to="$(dirname "$link")" "$sysroot$(readlink "$link")")" "$link"
done
echo "$want" >"$stamp"
