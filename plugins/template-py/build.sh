#!/usr/bin/env sh
# Builds src/ (plugin.py, wired by main.py) into a WebAssembly component at
# dist/plugin.wasm, with componentize-py from a virtualenv in .venv (made on
# first use from requirements.txt's pinned version). The component embeds
# CPython and the standard library; the host's Python only runs the tool.
#
#   ./build.sh            # PYTHON=python3.12 ./build.sh to pick the interpreter
#
# `./build.sh DIR` builds another plugin folder (DIR/src to
# DIR/dist/plugin.wasm) with this folder's toolchain and WIT.
set -eu
dir="$(cd "${1:-$(dirname "$0")}" && pwd)"
cd "$(dirname "$0")"
python="${PYTHON:-python3}"

if [ ! -x .venv/bin/componentize-py ] || ! cmp -s requirements.txt .venv/requirements.txt; then
  echo "setting up .venv with $(tr '\n' ' ' < requirements.txt)"
  "$python" -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
  cp requirements.txt .venv/requirements.txt
fi

# Typed bindings for the hookgate:plugin world (Event, Verdict, host.log...).
rm -rf bindings
.venv/bin/componentize-py --wit-path wit --world plugin bindings bindings

mkdir -p "$dir/dist"
started=$(date +%s)
.venv/bin/componentize-py --wit-path wit --world plugin \
  componentize --python-path "$dir/src" --python-path bindings main --output "$dir/dist/plugin.wasm"
size=$(wc -c < "$dir/dist/plugin.wasm")
echo "built $dir/dist/plugin.wasm ($((size / 1048576)) MiB) in $(( $(date +%s) - started )) s"
