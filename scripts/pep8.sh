#!/usr/bin/env bash
# ansible-test sanity's pep8 rules (its own ignore list, max line length 160) without the sanity run:
# the files given, or every tracked and untracked (not ignored) .py file. Used by `make pep8` and the pre-commit hook.
set -euo pipefail
ignore=$(python -c 'import ansible_test, os; print(os.path.join(os.path.dirname(ansible_test.__file__), "_util/controller/sanity/pep8/current-ignore.txt"))')
codes=$(grep -v '^#' "$ignore" | grep . | paste -sd,)
if [ "$#" -gt 0 ]; then
  exec pycodestyle --max-line-length 160 --ignore "$codes" "$@"
fi
git ls-files -z --cached --others --exclude-standard '*.py' | xargs -0 pycodestyle --max-line-length 160 --ignore "$codes"
