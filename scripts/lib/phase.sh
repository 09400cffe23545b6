# Sourced by scripts/test, sanitize, fuzz and lb. phase <name> <command...> runs the command, prints
# how long it took, and appends "<name> <seconds>" to $FERRY_CI_TIMES when that is set: .ci/run
# sums the build and test phases of each stage into its summary table.
phase() {
  local name=$1 start=$SECONDS rc=0
  shift
  "$@" || rc=$?
  printf '[%s] %s took %d s\n' "$name" "$*" $((SECONDS - start)) >&2
  if [[ -n ${FERRY_CI_TIMES:-} ]]; then
    printf '%s %d\n' "$name" $((SECONDS - start)) >>"$FERRY_CI_TIMES"
  fi
  return "$rc"
}
