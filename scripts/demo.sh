#!/usr/bin/env bash
# One command from a fresh machine to a running bot: sets up .venv with the demo extra (moto,
# which a production install leaves out) and starts `roleup demo`, which needs no Slack or AWS
# account (SQLite, an in-process moto IAM, a terminal for Slack).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --extras demo
exec .venv/bin/roleup demo "$@"
