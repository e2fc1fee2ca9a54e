#!/bin/sh
# Rebuild corpus/ from the Debian packages listed in SOURCES.md (run as root on Debian 12).
# The files are committed; this script records how they were made.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
apt-get download manpages manpages-es debian-reference-en debian-reference-es \
  installation-guide-amd64 python3.11-doc
for deb in ./*.deb; do dpkg-deb -x "$deb" root; done
out="$here/corpus"
rm -rf "$out" && mkdir -p "$out"
share=root/usr/share

man_text() {  # a man page as plain UTF-8 text, unhyphenated
  MANWIDTH=90 MANROFFOPT="-rHY=0" man -E UTF-8 -l "$1" > "$2"
}
for page in man1/chmod.1 man1/df.1 man1/du.1 man1/shred.1 man1/timeout.1 man1/nice.1 \
  man1/ln.1 man1/nohup.1 man1/mktemp.1 man5/fstab.5 man5/hosts.5 man5/shells.5 \
  man8/logrotate.8 man8/chroot.8; do
  man_text "$share/man/es/$page.gz" "$out/man-es-$(basename "$page" | cut -d. -f1).txt"
done
for page in man5/resolv.conf.5 man7/hier.7 man5/tmpfs.5 man7/inode.7 man7/symlink.7 \
  man7/environ.7 man7/hostname.7; do
  name=$(basename "$page"); name=${name%.*}
  man_text "$share/man/$page.gz" "$out/man-en-$(echo "$name" | tr . -).txt"
done
for chapter in ch03 ch05 ch08; do
  cp "$share/debian-reference/$chapter.es.html" "$out/debref-es-$chapter.html"
done
for chapter in ch04 ch06 ch07; do
  cp "$share/debian-reference/$chapter.en.html" "$out/debref-en-$chapter.html"
done
guide=$share/doc/installation-guide-amd64
for page in ch01s02 ch02s02 ch02s05 ch04s03 ch04s07 ch05s02 ch07s02 apcs04 ch08s06; do
  cp "$guide/es/$page.html" "$out/install-es-$page.html"
done
for page in ch01s08 ch03s05 ch04s05 ch05s04 ch06s04 apcs02 apcs03 ch08s04 apds04; do
  cp "$guide/en/$page.html" "$out/install-en-$page.html"
done
for module in secrets heapq bisect textwrap tempfile uuid; do
  cp "$share/doc/python3.11/html/library/$module.html" "$out/pydoc-en-$module.html"
done
