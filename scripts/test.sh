#!/usr/bin/env bash
# Runs the whole test suite: installs the tools the tests drive, checks
# formatting and vet, runs every test, then fuzzes every decoder briefly
# (scripts/fuzz.sh: FUZZTIME, default 3000x, inputs per target).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi
echo "== go vet"
go vet ./...

echo "== go test"
go test -count=1 -timeout 30m ./...

scripts/fuzz.sh
