#!/bin/sh
# Builds third_party/badger: the library part of Badger's module at the
# version below, from the Go module cache, with edged's patches
# (third_party/patches/badger-*.patch) applied. go.mod replaces
# github.com/dgraph-io/badger/v4 with it. Why, and how to drop it:
# third_party/README.md.
#
#   scripts/badger-vendor.sh           rebuild third_party/badger
#   scripts/badger-vendor.sh --check   fail if third_party/badger is not
#                                      what it would build (make lint)
set -eu

version=v4.9.6
cd "$(dirname "$0")/.."

src=$(go mod download -json "github.com/dgraph-io/badger/v4@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
if [ -z "$src" ] || [ ! -f "$src/go.mod" ]; then
	echo "badger-vendor: could not download github.com/dgraph-io/badger/v4@$version" >&2
	exit 1
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# The library only: no tests, no command, no docs.
(cd "$src" && find . -type f \( -name '*.go' ! -name '*_test.go' -o -name go.mod -o -name LICENSE \) \
	! -path './badger/*' ! -path './integration/*' ! -path './contrib/*' ! -path './docs/*' ! -path '*/testdata/*' \
	-print) | while read -r f; do
	mkdir -p "$out/badger/$(dirname "$f")"
	cp "$src/$f" "$out/badger/$f"
done
chmod -R u+w "$out/badger"
root=$(pwd)
for p in third_party/patches/badger-*.patch; do
	# Outside a repository, git apply works as patch(1) does.
	(cd "$out/badger" && git apply -p1 "$root/$p")
done

if [ "${1:-}" = --check ]; then
	if ! diff -r "$out/badger" third_party/badger >/dev/null; then
		diff -r "$out/badger" third_party/badger | head -20 >&2
		echo "badger-vendor: third_party/badger is not Badger $version with third_party/patches applied; run scripts/badger-vendor.sh" >&2
		exit 1
	fi
	# A file left out of git would be missing from every clone.
	untracked=$(git ls-files --others third_party/badger)
	if [ -n "$untracked" ]; then
		echo "badger-vendor: not in git: $untracked" >&2
		exit 1
	fi
	echo "third_party/badger: Badger $version with $(ls third_party/patches/badger-*.patch | wc -l) patch(es)"
	exit 0
fi
rm -rf third_party/badger
mv "$out/badger" third_party/badger
echo "third_party/badger: Badger $version with $(ls third_party/patches/badger-*.patch | wc -l) patch(es)"
