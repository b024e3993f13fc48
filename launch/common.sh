# shellcheck shell=bash
# Shared helpers for the launch/ scripts; sourced, never run.
#
# Every script takes its settings from environment variables or from flags
# named after them (TPU_NAME <-> --tpu-name VALUE or --tpu-name=VALUE; a flag
# wins over the environment), plus:
#   --dry-run (or DRY_RUN=1)  print each command, prefixed '+ ', and run nothing;
#   --help                    print the script's header comment;
#   -- ARGS...                passed through unchanged (to mrr_jax.main or gcloud);
#   --config.KEY=VALUE        a config override, passed through unchanged.

if ((BASH_VERSINFO[0] * 100 + BASH_VERSINFO[1] < 404)); then
  printf 'error: bash >= 4.4 is needed, this is %s (macOS: brew install bash)\n' "$BASH_VERSION" >&2
  exit 2
fi

DRY_RUN="${DRY_RUN:-0}"
EXTRA_ARGS=()

die() {
  printf 'error: %s\n' "$*" >&2
  exit 2
}

# The script's header comment (from line 2 to the first non-comment line),
# without '#SBATCH' directives.
usage() {
  sed -n '2,/^[^#]/{/^#SBATCH/d;/^# shellcheck/d;/^#/s/^# \{0,1\}//p;}' "$0"
}

# NAME -> --name (TPU_NAME -> --tpu-name).
flag_for() {
  local flag="${1,,}"
  printf -- '--%s' "${flag//_/-}"
}

# parse_flags "VAR1 VAR2 ..." "$@": sets the named globals from their flags and
# collects pass-through arguments in EXTRA_ARGS. Unknown flags are an error, so
# a typo never silently falls back to an environment value.
parse_flags() {
  local allowed=" $1 " arg name var value
  shift
  while (($#)); do
    arg="$1"
    shift
    case "$arg" in
      --dry-run) DRY_RUN=1 ;;
      -h | --help) usage; exit 0 ;;
      --) EXTRA_ARGS+=("$@"); break ;;
      --config.*) EXTRA_ARGS+=("$arg") ;;
      --*)
        name="${arg#--}"
        name="${name%%=*}"
        var="${name^^}"
        var="${var//-/_}"
        [[ "$allowed" == *" $var "* ]] || die "unknown flag --$name (see --help)"
        if [[ "$arg" == *=* ]]; then
          value="${arg#*=}"
        else
          (($#)) || die "--$name needs a value"
          value="$1"
          shift
        fi
        printf -v "$var" '%s' "$value"
        ;;
      *) die "unexpected argument '$arg' (pass-through arguments go after --, e.g. -- --config.batch_size=16)" ;;
    esac
  done
}

# require_var NAME EXAMPLE: refuse to go on when NAME is unset or empty.
require_var() {
  local name="$1" example="$2"
  if [[ -z "${!name:-}" ]]; then
    die "$name is required: set it in the environment or pass $(flag_for "$name") (example: $name=$example)"
  fi
}

# Refuse pass-through arguments in scripts that have nowhere to put them.
no_extra_args() {
  ((${#EXTRA_ARGS[@]} == 0)) || die "unexpected arguments: ${EXTRA_ARGS[*]}"
}

# One shell word: plain words as they are, anything else single-quoted, so
# that bash (or Python's shlex) reads back exactly the original string.
shell_quote() {
  if [[ "$1" =~ ^[A-Za-z0-9_./:=,@%+-]+$ ]]; then
    printf '%s' "$1"
  else
    printf '%s' "${1@Q}"
  fi
}

quote_args() {
  local out=() arg
  for arg in "$@"; do
    out+=("$(shell_quote "$arg")")
  done
  printf '%s' "${out[*]}"
}

# run_or_print CMD ARGS...: with DRY_RUN=1 print '+ CMD ARGS' on stdout and do
# nothing; otherwise log the same line on stderr and run it.
run_or_print() {
  if [[ "$DRY_RUN" == 1 ]]; then
    printf '+ %s\n' "$(quote_args "$@")"
  else
    printf '+ %s\n' "$(quote_args "$@")" >&2
    "$@"
  fi
}

# Absolute form of a local path (gs:// and other URLs unchanged), so it keeps
# its meaning after the script changes directory.
absolute_path() {
  if [[ "$1" == *://* || "$1" == /* ]]; then
    printf '%s' "$1"
  else
    printf '%s/%s' "$PWD" "${1#./}"
  fi
}
