#!/bin/sh
# The compose `bench` profile: the project's perf_analyzer script, run from the Triton 24.10 SDK image (which has the
# perf_analyzer binary) against the compose service. The checkout is mounted read-only at /src; the package is
# installed from a copy so that nothing is written into the checkout.
set -eu

work=$(mktemp -d)
cd /src
cp -R pyproject.toml README.md LICENSE sync_defense benchmarks samples "$work"/
cd "$work"
pip install --quiet --no-cache-dir .
exec python3 -m benchmarks.perf_analyzer --url "${SYNC_DEFENSE_URL:-triton:8001}" \
    --video samples/talking_head.mp4 --concurrency 1 2 4 "$@"
