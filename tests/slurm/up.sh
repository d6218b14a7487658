#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for the `slurm` tests (tests/test_slurm.py): Debian's
# slurmctld + slurmd + munge (22.05), no accounting daemon, no systemd, no cgroups. Run as root.
# Everything it writes lives in $FFBENCH_SLURM_DIR (default /tmp/ffbench-slurm); the tests read
# $FFBENCH_SLURM_DIR/env. `tests/slurm/down.sh` stops each daemon by its own pid.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
state=${FFBENCH_SLURM_DIR:-/tmp/ffbench-slurm}

if [ "$(id -u)" != 0 ]; then
    echo "tests/slurm/up.sh: needs root (it starts munged, slurmctld and slurmd)" >&2; exit 1
fi
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
    command -v apt-get >/dev/null || {
        echo "tests/slurm/up.sh: no slurmctld/slurmd/munged and no apt-get to install them" >&2; exit 1; }
    echo "installing slurmctld slurmd slurm-client munge (Debian)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurmctld slurmd slurm-client munge >/dev/null \
        || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive \
             apt-get install -y -q slurmctld slurmd slurm-client munge >/dev/null; }
fi
"$here/down.sh" >/dev/null 2>&1 || true
mkdir -p "$state"/{ctld,spool,munge,bin}
node=$(hostname -s)  # NodeName must resolve to this machine

# munge: its own key, socket and pid under $state, so a system munged is left alone
key="$state/munge/munge.key"
[ -s "$key" ] || dd if=/dev/urandom of="$key" bs=1024 count=1 status=none
chmod 400 "$key"
socket="$state/munge/munge.socket"
munged --force --key-file "$key" --socket "$socket" --pid-file "$state/munge/munged.pid" \
    --log-file "$state/munge/munged.log" --seed-file "$state/munge/munged.seed"

cat > "$state/slurm.conf" <<CONF
# written by tests/slurm/up.sh: a one-node test cluster
ClusterName=ffbench-test
SlurmctldHost=$node
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$socket
CredType=cred/munge
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/spool
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/slurmctld.log
SlurmdLogFile=$state/slurmd.log
SlurmctldPort=${FFBENCH_SLURM_PORT:-6917}
SlurmdPort=$(( ${FFBENCH_SLURM_PORT:-6917} + 1 ))
# no cgroups: track processes by their parent, bind nothing
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
# cores are the consumable: array tasks run side by side without a DefMemPerCPU
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# schedule at once, not every few seconds
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
# no accounting daemon: finished jobs stay visible to squeue (the sacct stand-in reads it)
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MinJobAge=3600
# a cancelled job is killed 5 s after its SIGTERM
KillWait=5
ReturnToService=2
MpiDefault=none
NodeName=$node CPUs=$(nproc) State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
CONF

# submitit asks sacct for job states; without slurmdbd sacct fails, so a stand-in answers
cp "$here/sacct" "$state/bin/sacct"
chmod +x "$state/bin/sacct"
cat > "$state/env" <<ENV
SLURM_CONF=$state/slurm.conf
PATH=$state/bin:$PATH
ENV

export SLURM_CONF="$state/slurm.conf"
slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF"
for _ in $(seq 60); do
    if sinfo -h -o %T 2>/dev/null | grep -qx idle; then
        echo "SLURM test cluster up: node $node, $(nproc) CPUs; env in $state/env"
        exit 0
    fi
    sleep 0.5
done
echo "tests/slurm/up.sh: the node did not come up; logs: $state/slurmctld.log $state/slurmd.log" >&2
sinfo >&2 || true
exit 1
