#!/usr/bin/env bash
# Stops the test cluster of tests/slurm/up.sh: each daemon by the pid it wrote.
state=${FFBENCH_SLURM_DIR:-/tmp/ffbench-slurm}
for pidfile in "$state/slurmd.pid" "$state/slurmctld.pid" "$state/munge/munged.pid"; do
    [ -s "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    if kill "$pid" 2>/dev/null; then
        for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
done
echo "SLURM test cluster stopped"
