# shellcheck shell=bash
# Sourced by the azd hooks (postprovision.sh, postdeploy.sh): tools and azd environment values.

# need TOOL: stop with one line if TOOL is not on PATH.
need() {
  if ! command -v "$1" >/dev/null 2>&1; then
    echo "error: $1 is not on PATH (README, \"Deploy to Azure\", prerequisites)" >&2
    exit 1
  fi
}

# env_value NAME: a value of the azd environment (infra/main.bicep's outputs): the variable if the hook
# was given it, else `azd env get-value NAME`; stops with one line if neither has it.
env_value() {
  local name=$1 value
  value=${!name:-}
  if [[ -z $value ]]; then
    value=$(azd env get-value "$name" 2>/dev/null) || value=""
  fi
  if [[ -z $value ]]; then
    echo "error: $name is not in the azd environment: run \`azd provision\` first" >&2
    exit 1
  fi
  printf '%s\n' "$value"
}
