#!/bin/sh
# Install what sluice needs to build, test and run, from Debian's packages.
# Does nothing when everything is already there.
set -e
PKGS="build-essential pkg-config clang libev-dev libssl-dev libpq-dev libhiredis-dev
libcriterion-dev libpg-query-dev libjson-c-dev libxxhash-dev uthash-dev libinih-dev libc-ares-dev
libunistring-dev
postgresql-15 postgresql-client-15 redis-server pgbouncer python3 python3-psycopg2
openssl procps cppcheck clang-tidy"
# promtool (Debian ships it in the prometheus package: 19 MB, about 10 s to
# install) checks /metrics in the integration tests
PKGS="$PKGS prometheus"
# node-postgres tests need Node.js and npm; a Node.js installed another way
# (with its own npm) is used as it is.
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || PKGS="$PKGS nodejs npm"
# PgJDBC tests run the driver from Debian's package with a JDK's java (its
# single-file launcher compiles the test); a JDK installed another way is used.
PKGS="$PKGS libpostgresql-jdbc-java"
command -v javac >/dev/null 2>&1 || PKGS="$PKGS default-jdk-headless"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "installing:$missing"
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# The JDK's alternatives need this folder, which minimal images leave out.
$SUDO mkdir -p /usr/share/man/man1
# The postgresql package's own cluster is not needed: tests make their own.
$SUDO apt-get install -y -q --no-install-recommends $missing
