#!/usr/bin/env bash
# `make test-cluster`: the workflow through SLURM, on a multi-node cluster
# on this machine.
#
#   bash tests/cluster/run.sh [pytest args...]
#
# Installs SLURM if needed, brings the cluster up (tests/cluster/slurm_cluster.sh),
# runs tests/cluster/test_slurm.py and brings the cluster down again, also
# when the tests fail or the script is interrupted.  A cluster that was
# already up when this started is left up: only what this script started is
# stopped.  Needs root (the SLURM daemons run as root here).
set -euo pipefail
cd "$(dirname "$0")/../.."

# Each snakemake run in the tests has a timeout of its own; this bounds the
# whole pytest run, as a last resort (seconds).
TIMEOUT=${SHORTCUTBENCH_CLUSTER_TEST_TIMEOUT:-900}

export PATH="$PWD/.venv/bin:$PATH"
command -v pytest >/dev/null || { echo "run.sh: no .venv/bin/pytest; run 'make test-env' first" >&2; exit 2; }

cluster() { bash tests/cluster/slurm_cluster.sh "$@"; }
t0=$SECONDS
started=0      # 1 once this script has started daemons
was_up=0       # 1 if the cluster was up before this script
tests_pid=

finish() {
    local rc=$?
    trap - EXIT INT TERM
    # Interrupted: stop the tests first.  `timeout` leads a process group of
    # its own, with pytest and the snakemake runs in it; on SIGTERM pytest
    # ends, a snakemake run would wait for its jobs, so what is left after a
    # few seconds is killed (and `down` cancels the jobs).
    if [[ -n $tests_pid ]] && kill -0 -- "-$tests_pid" 2>/dev/null; then
        kill -TERM -- "-$tests_pid" 2>/dev/null || true
        local i
        for ((i = 0; i < 10; i++)); do
            kill -0 -- "-$tests_pid" 2>/dev/null || break
            sleep 0.5
        done
        kill -KILL -- "-$tests_pid" 2>/dev/null || true
        wait "$tests_pid" 2>/dev/null || true
    fi
    if ((started)); then
        cluster down || rc=1
    elif ((was_up)); then
        echo "run.sh: the cluster was up before this script; leaving it up" >&2
    fi
    echo "run.sh: cluster tests exit status $rc, $((SECONDS - t0)) s in all" >&2
    exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

cluster install
if cluster running; then
    was_up=1
    echo "run.sh: the SLURM cluster is already up; using it" >&2
else
    started=1
    cluster up
fi

# In the background, so that Ctrl-C reaches this script's trap at once.
SHORTCUTBENCH_SLURM_TESTS=1 timeout --kill-after=30 "$TIMEOUT" \
    pytest tests/cluster "$@" &
tests_pid=$!
wait "$tests_pid"
