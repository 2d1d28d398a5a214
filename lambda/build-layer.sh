#!/usr/bin/env bash
# Builds the Lambda layer: the kernel's Python packages for the managed python3.13 runtime, plus
# the exec wrapper that makes the Rust binary the runtime client. See docs/lambda.md.
#
#   lambda/build-layer.sh [arm64|x86_64]        (default: $ARCH, else arm64)
#
# Output (the layer's root is /opt on Lambda):
#   build/layer/python/...                 pinned wheels from lambda/layer-requirements.txt,
#                                          pruned by lambda/prune.txt  -> /opt/python (sys.path)
#   build/layer/jupyter-mcp/wrapper.sh     AWS_LAMBDA_EXEC_WRAPPER      -> /opt/jupyter-mcp/
#   build/layer/jupyter-mcp/BUILD-INFO     architecture, Python, pins, sizes
#   build/jupyter-mcp-layer-ARCH.zip       the same tree, zipped (for `aws lambda publish-layer-version`)
#
# Wheels are chosen with pip's --platform/--python-version (no Docker, no Python 3.13 needed):
# CPython 3.13, manylinux up to glibc 2.34 (Amazon Linux 2023). Fails if the layer plus the
# function (target/lambda/jupyter-mcp-server/bootstrap, when built) exceed Lambda's 250 MB
# unzipped limit.
#
# Environment: PYTHON (the interpreter whose pip, 25 or newer, downloads the wheels; default
# .venv/bin/python), PYTHON313 (a CPython 3.13 to precompile the layer's bytecode with; default
# `python3.13` when on PATH, otherwise bytecode is left out).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD

ARCH=${1:-${ARCH:-arm64}}
case "$ARCH" in
    arm64) MACHINE=aarch64 ;;
    x86_64) MACHINE=x86_64 ;;
    *)
        echo "build-layer: unknown architecture '$ARCH'; use arm64 or x86_64" >&2
        exit 2
        ;;
esac

PY_VERSION=3.13
# Amazon Linux 2023 (the python3.13 runtime's OS) has glibc 2.34: any manylinux_2_17..2_34 wheel
# runs there. numpy, pandas and matplotlib no longer publish manylinux2014 (2_17) wheels for
# cp313, so a lone `--platform manylinux2014_*` finds no numpy 2.4.
GLIBC_MAX_MINOR=34
# Lambda's limit for the function and all its layers, unzipped (what CreateFunction reports as
# "Unzipped size must be smaller than 262144000 bytes").
LIMIT_BYTES=262144000

REQUIREMENTS=lambda/layer-requirements.txt
PRUNE=lambda/prune.txt
WRAPPER=lambda/wrapper.sh
BUILD=build
LAYER=$BUILD/layer
ZIP=$BUILD/jupyter-mcp-layer-$ARCH.zip
FUNCTION_BIN=target/lambda/jupyter-mcp-server/bootstrap

if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi

die() {
    echo "build-layer: $*" >&2
    exit 1
}

mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }

# Sum of the uncompressed sizes in a zip: what Lambda counts against the 250 MB limit.
unzipped_bytes() { unzip -Zt "$1" | awk '{ for (i = 1; i < NF; i++) if ($(i + 1) ~ /^bytes/) { print $i; exit } }'; }

# ELF e_machine of a binary: 183 is aarch64, 62 is x86_64.
elf_machine() { od -An -t u2 -j 18 -N 2 "$1" | tr -d ' '; }

command -v zip >/dev/null || die "zip not found; install it (Debian: apt-get install zip)"
command -v unzip >/dev/null || die "unzip not found; install it (Debian: apt-get install unzip)"

# pip before 25 checks Requires-Python against the interpreter running pip, not --python-version,
# and refuses cp313-only packages (contourpy) when run from an older Python.
pip_major=$("$PYTHON" -m pip --version | awk '{ split($2, v, "."); print v[1] }')
[ "${pip_major:-0}" -ge 25 ] ||
    die "$PYTHON has pip $("$PYTHON" -m pip --version | awk '{print $2}'), which cannot build for another Python version; need 25 or newer
hint: make layer (installs requirements-lambda.txt into .venv first) or PYTHON=/path/to/python $0 $ARCH"

# The layer must run the same kernel stack as the local venv and the tests.
while read -r pin; do
    case "$pin" in '' | '#'*) continue ;; esac
    grep -qixF "$pin" "$REQUIREMENTS" ||
        die "requirements-kernel.txt pins '$pin' but $REQUIREMENTS does not; update both together"
done <requirements-kernel.txt

start=$(date +%s)
rm -rf "$LAYER" "$ZIP"
mkdir -p "$LAYER/python" "$LAYER/jupyter-mcp"
# build/ is generated: keep it out of git without touching the repository's .gitignore.
printf '*\n' >"$BUILD/.gitignore"

platforms=()
for minor in $(seq 17 "$GLIBC_MAX_MINOR"); do
    platforms+=(--platform "manylinux_2_${minor}_${MACHINE}")
done

echo "build-layer: pip install for cp${PY_VERSION/./} manylinux (glibc <= 2.$GLIBC_MAX_MINOR) $MACHINE"
# --no-warn-conflicts: pip would compare the layer with the build venv's own packages.
"$PYTHON" -m pip install \
    --quiet --disable-pip-version-check --no-input --no-compile --no-warn-conflicts \
    --target "$LAYER/python" \
    --implementation cp --python-version "$PY_VERSION" --abi "cp${PY_VERSION/./}" \
    --only-binary=:all: "${platforms[@]}" \
    --requirement "$REQUIREMENTS"

raw_bytes=$(find "$LAYER/python" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')

while read -r pattern; do
    case "$pattern" in '' | '#'*) continue ;; esac
    find "$LAYER/python" -depth -path "$LAYER/python/$pattern" -exec rm -rf {} +
done <"$PRUNE"
find "$LAYER/python" -depth -type d -empty -delete

# Every kernel imports IPython, numpy, pandas... from a read-only /opt, so without .pyc files
# each kernel start compiles them again in memory. Bytecode must come from a 3.13 interpreter;
# unchecked-hash .pyc files stay valid whatever timestamps the zip round trip leaves.
find_python313() {
    local candidate
    for candidate in ${PYTHON313:-} "python$PY_VERSION" \
        $(command -v pyenv >/dev/null && ls -d "$(pyenv root)"/versions/"$PY_VERSION"*/bin/python"$PY_VERSION" 2>/dev/null); do
        if "$candidate" -c "import sys; sys.exit(sys.version_info[:2] != ($PY_VERSION_TUPLE))" 2>/dev/null; then
            command -v "$candidate"
            return
        fi
    done
}
PY_VERSION_TUPLE=${PY_VERSION/./, }
PYTHON313=$(find_python313)
if [ -n "$PYTHON313" ]; then
    echo "build-layer: precompiling bytecode with $PYTHON313"
    # Reproducible .pyc: a fixed hash seed (marshal writes sets in hash order) and one process
    # (with -j 0 the marshalled reference flags vary from run to run).
    PYTHONHASHSEED=0 "$PYTHON313" -m compileall -q -j 1 --invalidation-mode unchecked-hash "$LAYER/python" >/dev/null
    compiled="yes, CPython $("$PYTHON313" -c 'import platform; print(platform.python_version())')"
else
    echo "build-layer: no python$PY_VERSION here, so no precompiled bytecode (kernels compile in memory; see docs/lambda.md)"
    compiled=no
fi

install -m 0755 "$WRAPPER" "$LAYER/jupyter-mcp/wrapper.sh"
chmod -R a+rX "$LAYER"

{
    echo "arch=$ARCH"
    echo "python=$PY_VERSION"
    echo "glibc_max=2.$GLIBC_MAX_MINOR"
    echo "bytecode=$compiled"
    echo "pins:"
    grep -v -e '^#' -e '^$' "$REQUIREMENTS"
} >"$LAYER/jupyter-mcp/BUILD-INFO"

# Fixed timestamps and sorted names: the same inputs give the same zip, so CloudFormation does
# not publish a new layer version when nothing changed.
find "$LAYER" -exec touch -h -d '2020-01-01T00:00:00Z' {} +
(cd "$LAYER" && find . -mindepth 1 -not -type d -printf '%P\n' | LC_ALL=C sort | zip -q -X -@ "$ROOT/$ZIP")

layer_unzipped=$(unzipped_bytes "$ZIP")
layer_zipped=$(stat -c %s "$ZIP")

function_bytes=0
function_note="not built yet: run \`make build-lambda ARCH=$ARCH\`, then this script again to check the total"
if [ -f "$FUNCTION_BIN" ]; then
    function_bytes=$(stat -c %s "$FUNCTION_BIN")
    function_note=$FUNCTION_BIN
    want=$([ "$ARCH" = arm64 ] && echo 183 || echo 62)
    if [ "$(elf_machine "$FUNCTION_BIN")" != "$want" ]; then
        function_note="$FUNCTION_BIN (WARNING: built for the other architecture; rebuild with \`make build-lambda ARCH=$ARCH\`)"
    fi
fi
total=$((layer_unzipped + function_bytes))

echo "build-layer: $ARCH layer built in $(($(date +%s) - start)) s"
printf '  %-50s %12s bytes  %s\n' \
    "packages as installed" "$raw_bytes" "$(mib "$raw_bytes")" \
    "layer unzipped (after pruning)" "$layer_unzipped" "$(mib "$layer_unzipped")" \
    "layer zipped ($ZIP)" "$layer_zipped" "$(mib "$layer_zipped")" \
    "function unzipped" "$function_bytes" "$(mib "$function_bytes")" \
    "layer + function unzipped" "$total" "$(mib "$total")" \
    "Lambda limit (unzipped)" "$LIMIT_BYTES" "$(mib "$LIMIT_BYTES")"
echo "  function: $function_note"

if [ "$total" -gt "$LIMIT_BYTES" ]; then
    die "layer + function unzipped is $total bytes, over Lambda's $LIMIT_BYTES; prune more in $PRUNE or drop a package"
fi
echo "build-layer: $(mib $((LIMIT_BYTES - total))) left under the limit"
