#!/usr/bin/env bash
# Prints the path of a supported CPython (3.11 preferred, then 3.12, 3.13), or nothing.
# Looks on PATH first, then in pyenv's versions, so it works whichever shim is active.
set -u
candidates=(python3.11 python3.12 python3.13 python3)
for root in "${PYENV_ROOT:-$HOME/.pyenv}/versions"; do
  for minor in 11 12 13; do
    for p in "$root"/3."$minor".*/bin/python3."$minor"; do
      [ -x "$p" ] && candidates+=("$p")
    done
  done
done
for c in "${candidates[@]}"; do
  p=$(command -v "$c" 2>/dev/null) || continue
  if "$p" -c 'import sys; sys.exit(0 if (3, 11) <= sys.version_info[:2] <= (3, 13) else 1)' 2>/dev/null; then
    # Prefer 3.11: the pins in requirements/constraints.txt are resolved there.
    if "$p" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' 2>/dev/null; then
      echo "$p"; exit 0
    fi
    fallback=${fallback:-$p}
  fi
done
echo "${fallback:-}"
