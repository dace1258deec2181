#!/usr/bin/env bash
# Runs hookgate locally with ./config.toml: builds it in release mode and
# serves. State lives in ./data (the embedded store): nothing else to install
# or start. Demo credentials are used unless you export your own.
set -euo pipefail
cd "$(dirname "$0")"

export HOOKGATE_API_TOKEN="${HOOKGATE_API_TOKEN:-dev-token-change-me}"
export ORDERS_WEBHOOK_SECRET="${ORDERS_WEBHOOK_SECRET:-whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw}"
echo "API token: $HOOKGATE_API_TOKEN"
exec cargo run --release --quiet -p hookgate -- serve --config config.toml "$@"
