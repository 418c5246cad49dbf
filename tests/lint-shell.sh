#!/bin/bash
# lint-shell.sh -- shellcheck (warnings and errors) on the project's shell scripts.
# bash scripts as bash; scripts that run in the test bed's busybox dom0 or guest as
# POSIX sh (dash dialect, the closest to busybox ash). Scenario and guest scripts are
# sourced after dom0/lib.sh, so its variables count as defined (SC2154 off).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2
rc=0
shellcheck -S warning -s bash .ci/run tests/*.sh tests/testbed/run.sh tests/testbed/selftest.sh || rc=1
shellcheck -S warning -s dash tests/testbed/dom0/init tests/testbed/dom0/run-scenarios \
  tests/testbed/dom0/lib.sh tests/testbed/guest/init tests/testbed/guest/lib.sh || rc=1
shellcheck -S warning -s dash -e SC2154 tests/testbed/scenarios/*.sh tests/testbed/guest.d/*.sh || rc=1
[ "$rc" = 0 ] && echo "shellcheck: clean"
exit "$rc"
