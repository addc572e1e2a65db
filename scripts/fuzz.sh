#!/usr/bin/env bash
# Fuzzes every decoder (every Fuzz* target of every package) for a fixed
# number of inputs, FUZZTIME (default 3000x; a duration such as 10s also
# works). A target that fails without writing a crasher (a new file under
# testdata/fuzz/<target>/) is retried once: under CPU load Go's fuzzing
# coordinator can time out on its own ("context deadline exceeded"). A
# crasher is always a failure and is printed. The seed corpora under
# testdata/fuzz/ run first, as in `go test`. FUZZPKGS (default ./...)
# selects the packages.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-3000x}
log=$(mktemp "${TMPDIR:-/tmp}/fuzz.XXXXXX")
trap 'rm -f "$log"' EXIT
trap 'exit 130' INT TERM

corpus() { # the files of a target's corpus directory, sorted
  find "$1" -type f 2>/dev/null | sort || true
}

echo "== fuzz ($fuzztime per target)"
fuzzed=0 retried=0
for pkg in $(go list ${FUZZPKGS:-./...}); do
  targets=$(go test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz' || true)
  [ -n "$targets" ] || continue
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for target in $targets; do
    echo "-- $pkg $target"
    for attempt in 1 2; do
      before=$(corpus "$dir/testdata/fuzz/$target")
      if go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg" >"$log" 2>&1; then
        break
      fi
      crashers=$(comm -13 <(echo "$before") <(corpus "$dir/testdata/fuzz/$target") | sed '/^$/d')
      if [ -n "$crashers" ] || grep -q 'Failing input written to' "$log"; then
        cat "$log"
        for c in $crashers; do echo "== crasher $c:"; cat "$c"; done
        echo "fuzzing $pkg $target found a crasher"
        exit 1
      fi
      if [ "$attempt" = 2 ]; then
        cat "$log"
        echo "fuzzing $pkg $target failed twice without a crasher"
        exit 1
      fi
      echo "   failed without a crasher, retrying once:"
      tail -n 5 "$log" | sed 's/^/   | /'
      retried=$((retried + 1))
    done
    fuzzed=$((fuzzed + 1))
  done
done
echo "fuzzed $fuzzed targets ($retried retried)"
