#!/usr/bin/env bash
# Adds a link to the uploaded HTML report to the step summary.
#
#   BYOK_ACTION_REPORT_URL   the artifact's URL (`actions/upload-artifact`'s `artifact-url`)
#   BYOK_ACTION_REPORT_NAME  the artifact's name
set -euo pipefail
url="${BYOK_ACTION_REPORT_URL:?}"
if [[ ! "$url" =~ ^https://[A-Za-z0-9./_-]+$ ]]; then
  echo "::warning title=byok-flow action::unexpected artifact URL; the step summary has no link to the report"
  exit 0
fi
if [[ -n "${GITHUB_STEP_SUMMARY:-}" ]]; then
  printf '\n**[The HTML report](%s)** (artifact `%s`: download it, unzip, open `report.html`; it loads nothing and runs no script).\n' \
    "$url" "${BYOK_ACTION_REPORT_NAME:-report}" >> "$GITHUB_STEP_SUMMARY"
fi
