#!/usr/bin/env bash
# Deploys to AWS Lambda what `make build-lambda layer` built (`make deploy` runs this). The only
# step of the Lambda packaging that needs AWS credentials; see docs/lambda.md.
#
#   DEPLOY_WITH=sam (default)  sam deploy --guided of template.yaml: function, layer, Function URL
#                              (streaming, AWS_IAM unless AUTH_TYPE=NONE), HTTP API, role, logs.
#   DEPLOY_WITH=cargo-lambda   cargo lambda deploy of the binary onto an existing layer
#                              (LAYER_ARN=...): quick code updates. Creates no Function URL.
#
# Other variables: ARCH (arm64|x86_64), STACK_NAME, AUTH_TYPE (AWS_IAM|NONE), ALLOWED_HOSTS
# (the AllowedHostsValue output of the first deploy), FUNCTION_NAME, ROLE_ARN (cargo-lambda).
set -euo pipefail

cd "$(dirname "$0")/.."

ARCH=${ARCH:-arm64}
DEPLOY_WITH=${DEPLOY_WITH:-sam}
STACK_NAME=${STACK_NAME:-jupyter-mcp-server}
AUTH_TYPE=${AUTH_TYPE:-AWS_IAM}
ALLOWED_HOSTS=${ALLOWED_HOSTS:-}
FUNCTION_NAME=${FUNCTION_NAME:-jupyter-mcp-server}
BIN=target/lambda/jupyter-mcp-server/bootstrap
LAYER_INFO=build/layer/jupyter-mcp/BUILD-INFO

die() {
    echo "deploy: $*" >&2
    exit 2
}

# Credentials: only whether some source is configured is checked (no value is read, nothing is
# called), so a machine without any stops here with a clear message instead of deep inside sam.
have_credentials() {
    local name
    for name in AWS_ACCESS_KEY_ID AWS_PROFILE AWS_WEB_IDENTITY_TOKEN_FILE \
        AWS_CONTAINER_CREDENTIALS_FULL_URI AWS_CONTAINER_CREDENTIALS_RELATIVE_URI; do
        [ -n "${!name:-}" ] && return 0
    done
    [ -f "${AWS_SHARED_CREDENTIALS_FILE:-${HOME:-/nonexistent}/.aws/credentials}" ] && return 0
    [ -f "${AWS_CONFIG_FILE:-${HOME:-/nonexistent}/.aws/config}" ] && return 0
    # An EC2 instance profile cannot be seen from here: DEPLOY_ASSUME_CREDENTIALS=1 says it exists.
    [ "${DEPLOY_ASSUME_CREDENTIALS:-}" = 1 ]
}

have_credentials || die "no AWS credentials configured; deploying needs them (everything else in
the Lambda packaging runs offline: make build-lambda layer lint-template).
hint: aws configure | aws sso login --profile NAME && export AWS_PROFILE=NAME | export
      AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... | on EC2 with an instance role:
      DEPLOY_ASSUME_CREDENTIALS=1 make deploy"

case "$ARCH" in
    arm64) want_machine=183 ;;
    x86_64) want_machine=62 ;;
    *) die "ARCH must be arm64 or x86_64, not '$ARCH'" ;;
esac
case "$AUTH_TYPE" in AWS_IAM | NONE) ;; *) die "AUTH_TYPE must be AWS_IAM or NONE, not '$AUTH_TYPE'" ;; esac

# The template points at whatever was built last; make sure that is $ARCH.
[ -x "$BIN" ] || die "$BIN missing; run: make build-lambda ARCH=$ARCH"
[ "$(od -An -t u2 -j 18 -N 2 "$BIN" | tr -d ' ')" = "$want_machine" ] ||
    die "$BIN was built for the other architecture; run: make build-lambda ARCH=$ARCH"

sam_deploy() {
    command -v sam >/dev/null || die "sam (AWS SAM CLI) not found; install it (pip install aws-sam-cli, or AWS's installer)"
    [ -f "$LAYER_INFO" ] || die "build/layer missing; run: make layer ARCH=$ARCH"
    grep -qx "arch=$ARCH" "$LAYER_INFO" || die "build/layer was built for another architecture; run: make layer ARCH=$ARCH"
    local overrides=("Architecture=$ARCH" "FunctionUrlAuthType=$AUTH_TYPE")
    [ -n "$ALLOWED_HOSTS" ] && overrides+=("AllowedHosts=$ALLOWED_HOSTS")
    # No `sam build`: CodeUri and ContentUri are already built; sam deploy zips and uploads them.
    sam deploy --guided --template-file template.yaml --stack-name "$STACK_NAME" \
        --capabilities CAPABILITY_IAM --resolve-s3 --parameter-overrides "${overrides[@]}"
    if [ -z "$ALLOWED_HOSTS" ]; then
        echo "deploy: the server accepts no public Host yet. Deploy again with the AllowedHostsValue output:"
        echo "        make deploy ARCH=$ARCH ALLOWED_HOSTS=<AllowedHostsValue>"
    fi
}

cargo_lambda_deploy() {
    [ -n "${LAYER_ARN:-}" ] || die "LAYER_ARN is required with DEPLOY_WITH=cargo-lambda: the LayerArn output of a
sam deploy, or your own publish of build/jupyter-mcp-layer-$ARCH.zip (over 50 MB, so through S3):
  aws s3 cp build/jupyter-mcp-layer-$ARCH.zip s3://BUCKET/
  aws lambda publish-layer-version --layer-name jupyter-mcp-python --content S3Bucket=BUCKET,S3Key=jupyter-mcp-layer-$ARCH.zip \\
      --compatible-runtimes python3.13 --compatible-architectures $ARCH"
    local env_file=build/lambda.env
    mkdir -p build
    # A file, not --env-var: cargo lambda splits --env-var values at commas (ALLOWED_HOSTS).
    cat >"$env_file" <<EOF
AWS_LAMBDA_EXEC_WRAPPER=/opt/jupyter-mcp/wrapper.sh
JUPYTER_MCP_PYTHON=/var/lang/bin/python3.13
JUPYTER_MCP_KERNEL_PYTHONPATH=/opt/python
JUPYTER_MCP_WORKING_DIR=/tmp/notebooks
JUPYTER_MCP_ALLOWED_HOSTS=$ALLOWED_HOSTS
JUPYTER_MCP_LAMBDA_STREAMING=true
JUPYTER_MCP_KERNEL_MEMORY_MB=512
EOF
    local role=()
    [ -n "${ROLE_ARN:-}" ] && role=(--iam-role "$ROLE_ARN")
    # Never --enable-function-url: cargo lambda makes that URL public (AuthType NONE).
    PATH="$PWD/.venv/bin:$PATH" cargo lambda deploy "$FUNCTION_NAME" --runtime python3.13 \
        --layer "$LAYER_ARN" --env-file "$env_file" --memory 2048 --timeout 300 "${role[@]}"
    echo "deploy: for a streaming, IAM-authenticated Function URL (once):"
    echo "  aws lambda create-function-url-config --function-name $FUNCTION_NAME --auth-type AWS_IAM --invoke-mode RESPONSE_STREAM"
}

case "$DEPLOY_WITH" in
    sam) sam_deploy ;;
    cargo-lambda) cargo_lambda_deploy ;;
    *) die "DEPLOY_WITH must be sam or cargo-lambda, not '$DEPLOY_WITH'" ;;
esac
