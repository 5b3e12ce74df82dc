#!/bin/sh
# PostgreSQL's source tree of the installed server's version, from Debian's
# source package, configured and with the regression and isolation suites
# built (pg_regress, regress.so, isolationtester): what tests/pgregress/run.py
# runs. Prints the tree's path. Does nothing when it is already there.
set -e
out=${1:-build/pgsrc}
ver=$(dpkg-query -W -f='${Version}' postgresql-15)
up=${ver%%-*}
tree="$out/postgresql-$up"
if [ -x "$tree/src/test/isolation/isolationtester" ] && [ -f "$tree/src/test/regress/regress.so" ]; then
	echo "$tree"
	exit 0
fi
mkdir -p "$out"
if [ ! -d "$tree" ]; then
	if ! apt-get indextargets 2>/dev/null | grep -q 'deb-src'; then
		# Debian's images list binary packages only
		cat >/etc/apt/sources.list.d/sluice-src.sources <<SRC
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
		apt-get update -q >&2
	fi
	(cd "$out" && apt-get source --download-only -q "postgresql-15=$ver" >&2)
	tar -C "$out" -xjf "$out/postgresql-15_$up.orig.tar.bz2"
fi
(
	cd "$tree"
	[ -f config.status ] || ./configure -q --without-readline --without-icu --without-zlib >&2
	for d in src/backend/generated-headers src/common src/port src/interfaces/libpq src/test/regress src/test/isolation; do
		case $d in
		*generated-headers) make -s -C src/backend generated-headers >&2 ;;
		*) make -s -j2 -C "$d" >&2 ;;
		esac
	done
)
echo "$tree"
