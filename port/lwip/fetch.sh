#!/usr/bin/env bash
# fetch.sh: unpack Debian's lwIP source package for the build (port/lwip/lwip.mk).
#
#   fetch.sh DEST TOP VERSION SUITE MIRROR DSC_SHA256
#
# DEST (e.g. build/third_party/lwip-2.1.3) is made from the source package
# lwip=VERSION of Debian SUITE: apt-get, with a deb-src list, lists and cache
# of its own under TOP/apt (the system's apt configuration and state are not
# read or touched), downloads it; the .dsc must match DSC_SHA256 and the
# tarballs the .dsc's SHA-256 sums (dpkg-source -x checks them again, and
# applies Debian's patches). An unpacked DEST is reused as is (offline
# rebuilds), and downloaded files are reused when DEST was deleted.
set -euo pipefail

dest=$1 top=$2 version=$3 suite=$4 mirror=$5 dsc_sha256=$6
[ -f "$dest/.tb-unpacked" ] && exit 0

mkdir -p "$top"
top=$(cd "$top" && pwd)   # apt-get source runs from the download folder
case $dest in /*) ;; *) dest=$PWD/$dest ;; esac
# One fetch at a time: make -j, or two boards built at once.
exec 9>"$top/.lwip.lock"
flock 9
[ -f "$dest/.tb-unpacked" ] && exit 0

for tool in apt-get dpkg-source sha256sum; do
	command -v "$tool" >/dev/null || { echo "lwip: $tool not found: run 'make deps' (dpkg-dev)" >&2; exit 1; }
done

apt=$top/apt
dl=$apt/dl
upstream=${version%-*}          # 2.1.3+dfsg1-2 -> 2.1.3+dfsg1
dsc=$dl/lwip_${version}.dsc
mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$dl"
printf 'deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] %s %s main\n' \
	"$mirror" "$suite" >"$apt/sources.list"
aptopts=(-q -o Dir::Etc::SourceList="$apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
	-o Dir::State::Lists="$apt/lists" -o Dir::Cache="$apt/cache"
	-o Dir::Etc::Preferences=/dev/null -o Dir::Etc::PreferencesParts=/dev/null)
# As root apt drops to the _apt user, which cannot write into build/: download as ourselves.
[ "$(id -u)" = 0 ] && aptopts+=(-o APT::Sandbox::User=root)

have_all() {
	[ -f "$dsc" ] || return 1
	local f
	for f in $(awk '/^Checksums-Sha256:/{on=1;next} /^[^ ]/{on=0} on{print $3}' "$dsc"); do
		[ -f "$dl/$f" ] || return 1
	done
}

if ! have_all; then
	echo "  LWIP     apt-get source lwip=$version ($suite, $mirror)"
	apt-get "${aptopts[@]}" update >"$apt/update.log" 2>&1 ||
		{ cat "$apt/update.log" >&2; echo "lwip: apt-get update of $apt/sources.list failed" >&2; exit 1; }
	(cd "$dl" && apt-get "${aptopts[@]}" source --download-only "lwip=$version") >"$apt/source.log" 2>&1 ||
		{ cat "$apt/source.log" >&2; echo "lwip: apt-get source lwip=$version failed" >&2; exit 1; }
fi

# The .dsc is pinned; its SHA-256 lines pin the tarballs.
echo "$dsc_sha256  $dsc" | sha256sum -c --quiet - ||
	{ echo "lwip: $dsc does not match the pinned SHA-256" >&2; exit 1; }
awk '/^Checksums-Sha256:/{on=1;next} /^[^ ]/{on=0} on{print $1 "  " $3}' "$dsc" |
	(cd "$dl" && sha256sum -c --quiet -) ||
	{ echo "lwip: a tarball does not match $dsc" >&2; exit 1; }

tmp=$dest.tmp.$$
rm -rf "$tmp"
trap 'rm -rf "$tmp"' EXIT
echo "  LWIP     dpkg-source -x lwip_${version}.dsc -> $dest"
dpkg-source -q --no-copy -x "$dsc" "$tmp" >"$apt/unpack.log" 2>&1 ||
	{ cat "$apt/unpack.log" >&2; echo "lwip: dpkg-source -x failed" >&2; exit 1; }
[ -f "$tmp/src/core/tcp.c" ] || { echo "lwip: unexpected layout in $dsc (no src/core/tcp.c)" >&2; exit 1; }
echo "lwip $version ($upstream) from Debian $suite" >"$tmp/.tb-unpacked"
rm -rf "$dest"
mv "$tmp" "$dest"
