#!/usr/bin/env bash
# Installs the prebuilt byok-flow of this action's own ref, when that ref is a
# release tag (`v1.2.3`): downloads the archive for this runner from the
# release, checks it against the release's SHA-256 sum, and unpacks the binary
# where action.yml runs it. Prints `installed=true` to $GITHUB_OUTPUT when it did;
# otherwise (a branch, a commit, no archive for this runner, the download failed)
# it says why and the action builds byok-flow from source. A sum that does not
# match fails the step: the archive is not what was released.
#
#   BYOK_ACTION_REF         the action's ref (`github.action_ref`); default: the
#                           folder of $GITHUB_ACTION_PATH named for the ref
#   BYOK_ACTION_REPOSITORY  `owner/name` (`github.action_repository`)
#   BYOK_ACTION_RELEASES    where releases are [default: https://github.com/OWNER/NAME/releases/download]
#   BYOK_ACTION_BIN_DIR     where to put the binary [default: ~/.byok-flow-action/bin]
#   RUNNER_OS, RUNNER_ARCH  set by the runner
set -euo pipefail

note() { echo "byok-flow: $1"; }

ref="${BYOK_ACTION_REF:-}"
if [[ -z "$ref" && -n "${GITHUB_ACTION_PATH:-}" ]]; then
  # .../_actions/OWNER/NAME/REF, or .../REF/setup for the setup action.
  action_path="${GITHUB_ACTION_PATH%/}"
  ref=$(basename "${action_path%/setup}")
fi
if [[ ! "$ref" =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
  note "the action's ref \`${ref:-(none)}\` is not a release tag (vX.Y.Z); building from source"
  exit 0
fi
repo="${BYOK_ACTION_REPOSITORY:-}"
if [[ -z "${BYOK_ACTION_RELEASES:-}" && -z "$repo" ]]; then
  note "cannot tell which repository the action comes from; building from source"
  exit 0
fi
releases="${BYOK_ACTION_RELEASES:-https://github.com/$repo/releases/download}"

case "${RUNNER_OS:-}/${RUNNER_ARCH:-}" in
  Linux/X64) target=x86_64-unknown-linux-musl ;;
  Linux/ARM64) target=aarch64-unknown-linux-musl ;;
  macOS/X64) target=x86_64-apple-darwin ;;
  macOS/ARM64) target=aarch64-apple-darwin ;;
  Windows/X64) target=x86_64-pc-windows-msvc ;;
  *)
    note "no prebuilt byok-flow for ${RUNNER_OS:-?}/${RUNNER_ARCH:-?}; building from source"
    exit 0
    ;;
esac
name="byok-flow-$ref-$target"
if [[ "$target" == *windows* ]]; then archive="$name.zip"; else archive="$name.tar.gz"; fi

work=$(mktemp -d "${RUNNER_TEMP:-/tmp}/byok-flow-download.XXXXXX")
trap 'rm -rf "$work"' EXIT
fetch() { curl --fail --silent --show-error --location --retry 3 --output "$work/$1" "$releases/$ref/$1"; }
if ! fetch "$archive" || ! fetch "$archive.sha256"; then
  echo "::warning title=byok-flow action::cannot download $archive from $releases/$ref; building from source"
  exit 0
fi

expected=$(cut -d ' ' -f 1 < "$work/$archive.sha256" | tr -d '\r\n')
if command -v sha256sum >/dev/null 2>&1; then
  actual=$(sha256sum "$work/$archive" | cut -d ' ' -f 1)
else
  actual=$(shasum -a 256 "$work/$archive" | cut -d ' ' -f 1)
fi
if [[ ! "$expected" =~ ^[0-9a-f]{64}$ || "$actual" != "$expected" ]]; then
  echo "::error title=byok-flow action::$archive does not match its SHA-256 sum (expected ${expected:-nothing}, got $actual); not running it"
  exit 1
fi

if [[ "$archive" == *.zip ]]; then
  unzip -q "$work/$archive" -d "$work/unpacked"
else
  mkdir "$work/unpacked"
  tar -xzf "$work/$archive" -C "$work/unpacked"
fi
bin_dir="${BYOK_ACTION_BIN_DIR:-$HOME/.byok-flow-action/bin}"
mkdir -p "$bin_dir"
exe=byok-flow
[[ "$target" == *windows* ]] && exe=byok-flow.exe
cp "$work/unpacked/$name/$exe" "$bin_dir/$exe"
chmod +x "$bin_dir/$exe"
version=$("$bin_dir/$exe" --version)
if [[ "$version" != "byok-flow ${ref#v}" ]]; then
  echo "::error title=byok-flow action::$archive holds \`$version\`, not byok-flow ${ref#v}"
  exit 1
fi
note "installed $version ($target, SHA-256 $actual)"
echo "installed=true" >> "$GITHUB_OUTPUT"
