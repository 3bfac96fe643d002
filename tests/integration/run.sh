#!/usr/bin/env bash
# Run every integration test (tests/integration/t_*.sh) against $BERTH_BIN; prints one line per
# test and a summary; exit 1 if any failed.
cd "$(dirname "$0")"
pass=0; failed=()
for t in t_*.sh; do
  [ -n "${ONLY:-}" ] && [[ "$t" != *"$ONLY"* ]] && continue
  if timeout 300 bash "$t"; then pass=$((pass+1)); else failed+=("$t"); fi
done
echo "integration${SUITE:+ ($SUITE)}: $pass passed, ${#failed[@]} failed ${failed[*]:-}"
[ ${#failed[@]} -eq 0 ]
