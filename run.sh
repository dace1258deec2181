#!/usr/bin/env bash
# Runs hookgate locally with ./config.toml: makes sure a Redis answers on
# 127.0.0.1:6379 (starting one if needed), then builds and serves.
# Demo credentials are used unless you export your own.
set -euo pipefail
cd "$(dirname "$0")"

redis_up() { (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null; }

if ! redis_up; then
  if ! command -v redis-server >/dev/null; then
    if [ "$(id -u)" = 0 ]; then
      apt-get update -qq && apt-get install -y -qq redis-server >/dev/null
    elif command -v sudo >/dev/null; then
      sudo apt-get update -qq && sudo apt-get install -y -qq redis-server >/dev/null
    else
      echo "redis-server is missing: install it with 'apt-get install -y redis-server'" >&2
      exit 1
    fi
  fi
  mkdir -p data/redis
  redis-server --bind 127.0.0.1 --port 6379 --daemonize yes --appendonly yes \
    --dir "$PWD/data/redis" --logfile "$PWD/data/redis/redis.log"
  for _ in $(seq 50); do redis_up && break; sleep 0.1; done
  echo "started redis-server on 127.0.0.1:6379 (data in data/redis)"
fi

export HOOKGATE_API_TOKEN="${HOOKGATE_API_TOKEN:-dev-token-change-me}"
export ORDERS_WEBHOOK_SECRET="${ORDERS_WEBHOOK_SECRET:-whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw}"
echo "API token: $HOOKGATE_API_TOKEN"
exec cargo run --release --quiet -p hookgate -- serve --config config.toml "$@"
