#!/bin/sh
# Builds hubbub as a release is built: one static binary (CGO_ENABLED=0,
# -trimpath, symbols stripped), stamped with $VERSION, $REVISION and
# $COMMIT_TIME when they are set; without them the Go toolchain records
# what it knows (see internal/buildinfo). The Dockerfile and CI (.ci/run)
# both build with this script, and .goreleaser.yaml uses the same flags.
#
#   VERSION=v1.2.3 REVISION=$(git rev-parse HEAD) deploy/build-static.sh ./hubbub
set -eu
out=${1:?usage: deploy/build-static.sh OUTPUT}
pkg=github.com/hubbub/hubbub/internal/buildinfo
ldflags="-s -w"
if [ -n "${VERSION:-}" ]; then ldflags="$ldflags -X $pkg.version=$VERSION"; fi
if [ -n "${REVISION:-}" ]; then ldflags="$ldflags -X $pkg.revision=$REVISION"; fi
if [ -n "${COMMIT_TIME:-}" ]; then ldflags="$ldflags -X $pkg.commitTime=$COMMIT_TIME"; fi
CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out" ./cmd/hubbub
