#!/usr/bin/env bash
# Run every test: installs what is missing, then unit tests, integration tests against a real
# server, the same under ASan/UBSan, and a short fuzzing run. Exit status 0 = all passed.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
make -j2 all unit-build
make test
