#!/bin/sh
# Builds edged's patched copies of modules under third_party/: the library
# part of each module below at its version, from the Go module cache, with
# edged's patches (third_party/patches/NAME-*.patch) applied. go.mod
# replaces each module with its copy. Why, and how to drop them:
# third_party/README.md.
#
#   scripts/vendor.sh           rebuild third_party/badger and third_party/ristretto
#   scripts/vendor.sh --check   fail if a copy is not what it would build (make lint)
set -eu

cd "$(dirname "$0")/.."
root=$(pwd)
check=${1:-}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# vendor NAME MODULE VERSION EXCLUDED-DIRS... builds third_party/NAME.
vendor() {
	name=$1 module=$2 version=$3
	shift 3
	src=$(go mod download -json "$module@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	if [ -z "$src" ] || [ ! -f "$src/go.mod" ]; then
		echo "vendor: could not download $module@$version" >&2
		exit 1
	fi
	excluded=""
	for d in "$@" testdata; do
		excluded="$excluded ! -path ./$d/* ! -path */$d/*"
	done
	# The library only: no tests, no commands, no docs.
	# shellcheck disable=SC2086 # $excluded is a list of find arguments
	(set -f && cd "$src" && find . -type f \( -name '*.go' ! -name '*_test.go' -o -name '*.s' -o -name go.mod -o -name LICENSE \) $excluded -print) |
		while read -r f; do
			mkdir -p "$out/$name/$(dirname "$f")"
			cp "$src/$f" "$out/$name/$f"
		done
	chmod -R u+w "$out/$name"
	patches=$(ls third_party/patches/"$name"-*.patch)
	for p in $patches; do
		# Outside a repository, git apply works as patch(1) does.
		(cd "$out/$name" && git apply -p1 "$root/$p")
	done
	summary="third_party/$name: $module $version with $(echo "$patches" | wc -w) patch(es)"
	if [ "$check" = --check ]; then
		if ! diff -r "$out/$name" "third_party/$name" >/dev/null; then
			diff -r "$out/$name" "third_party/$name" | head -20 >&2
			echo "vendor: third_party/$name is not $module $version with its patches applied; run scripts/vendor.sh" >&2
			exit 1
		fi
		# A file left out of git would be missing from every clone.
		untracked=$(git ls-files --others "third_party/$name")
		if [ -n "$untracked" ]; then
			echo "vendor: not in git: $untracked" >&2
			exit 1
		fi
	else
		rm -rf "third_party/$name"
		mv "$out/$name" "third_party/$name"
	fi
	echo "$summary"
}

vendor badger github.com/dgraph-io/badger/v4 v4.9.6 badger integration contrib docs
vendor ristretto github.com/dgraph-io/ristretto/v2 v2.2.0 contrib benchmarks sim
