#!/usr/bin/env bash
# Runs byok-flow for the composite action (action.yml). Every value arrives in
# an environment variable and is passed on as one argument, never spliced into
# a command line, so nothing in an input (a pull request's title, say) can run
# as shell, and the age identity never appears in a process list.
#
#   BYOK_ACTION_WORKFLOW  the workflow file
#   BYOK_ACTION_INPUTS    `name=value` or `name: value` lines (`@path` reads a file)
#   BYOK_ACTION_MAX_USD   the budget ceiling, or empty
#   BYOK_ACTION_MOCK      `true` for `--mock`
#   BYOK_ACTION_EACH      a rows file for `--each`, or empty
#   BYOK_ACTION_SHARD     `K/N` for `--shard`, or empty
#   BYOK_ACTION_OUT       a folder for `--out`, or empty
#   BYOK_ACTION_MERGE     shard folders to merge into BYOK_ACTION_OUT (one a line), or empty
#   BYOK_ACTION_AGE_KEY   the age identity, or empty
#   BYOK_ACTION_REPORT    `true` (default) to write the HTML report too (with EACH, of the rows)
#   BYOK_ACTION_BIN       the byok-flow binary (default: where action.yml installs it)
set -euo pipefail

fail() {
  echo "::error title=byok-flow action::$1"
  exit 2
}

bin="${BYOK_ACTION_BIN:-$HOME/.byok-flow-action/bin/byok-flow}"

if [[ -n "${BYOK_ACTION_MERGE:-}" ]]; then
  [[ -n "${BYOK_ACTION_OUT:-}" ]] || fail "merge: give \`out\`, the folder for the merged results"
  args=(merge)
  while IFS= read -r line || [[ -n "$line" ]]; do
    line="${line%$'\r'}"
    line="${line#"${line%%[![:space:]]*}"}"
    line="${line%"${line##*[![:space:]]}"}"
    [[ -z "$line" ]] || args+=("$line")
  done <<< "$BYOK_ACTION_MERGE"
  args+=(--out "$BYOK_ACTION_OUT")
  exec "$bin" "${args[@]}"
fi

[[ -n "${BYOK_ACTION_WORKFLOW:-}" ]] || fail "the action needs the input \`workflow\` (or \`merge\`)"
args=(run "$BYOK_ACTION_WORKFLOW")

number=0
while IFS= read -r line || [[ -n "$line" ]]; do
  number=$((number + 1))
  line="${line%$'\r'}"
  line="${line#"${line%%[![:space:]]*}"}"
  if [[ -z "$line" || "$line" == \#* ]]; then
    continue
  fi
  if [[ "$line" =~ ^([A-Za-z0-9_-]+)=(.*)$ ]]; then
    name="${BASH_REMATCH[1]}"
    value="${BASH_REMATCH[2]}"
  elif [[ "$line" =~ ^([A-Za-z0-9_-]+):([[:space:]]+(.*))?$ ]]; then
    name="${BASH_REMATCH[1]}"
    value="${BASH_REMATCH[3]}"
    value="${value%"${value##*[![:space:]]}"}"
    if [[ "$value" =~ ^\"(.*)\"$ || "$value" =~ ^\'(.*)\'$ ]]; then
      value="${BASH_REMATCH[1]}"
    elif [[ "$value" =~ ^[\|\>] ]]; then
      fail "inputs, line $number: \`$name\` is a multi-line YAML value; write it to a file and pass \`$name=@FILE\`"
    fi
  else
    fail "inputs, line $number: write \`name=value\` or \`name: value\`"
  fi
  args+=(--input "$name=$value")
done <<< "${BYOK_ACTION_INPUTS:-}"

if [[ -n "${BYOK_ACTION_MAX_USD:-}" ]]; then
  args+=(--max-usd "$BYOK_ACTION_MAX_USD")
fi
if [[ -n "${BYOK_ACTION_EACH:-}" ]]; then
  args+=(--each "$BYOK_ACTION_EACH")
fi
if [[ -n "${BYOK_ACTION_SHARD:-}" ]]; then
  args+=(--shard "$BYOK_ACTION_SHARD")
fi
if [[ -n "${BYOK_ACTION_OUT:-}" ]]; then
  args+=(--out "$BYOK_ACTION_OUT")
fi
case "${BYOK_ACTION_MOCK:-false}" in
  true) args+=(--mock) ;;
  false | "") ;;
  *) fail "mock: write \`true\` or \`false\`" ;;
esac

case "${BYOK_ACTION_REPORT:-true}" in
  true | "") report=true ;;
  false) report=false ;;
  *) fail "report: write \`true\` or \`false\`" ;;
esac

# Only a given identity replaces one the job may already set.
if [[ -n "${BYOK_ACTION_AGE_KEY:-}" ]]; then
  export BYOK_FLOW_AGE_KEY="$BYOK_ACTION_AGE_KEY"
fi
unset BYOK_ACTION_AGE_KEY

result_dir=$(mktemp -d "${RUNNER_TEMP:-/tmp}/byok-flow.XXXXXX")
result="$result_dir/result.md"
# With `each`, the report has the totals and a table of the rows, the failed first.
if [[ "$report" == true ]]; then
  args+=(--report "$result_dir/report.html")
fi
status=0
"$bin" "${args[@]}" > "$result" || status=$?
echo "result_file=$result" >> "$GITHUB_OUTPUT"
# A run refused before it started (an invalid workflow, say) has no report.
if [[ -f "$result_dir/report.html" ]]; then
  echo "report_file=$result_dir/report.html" >> "$GITHUB_OUTPUT"
fi
exit "$status"
