#!/usr/bin/env bash
# Start a real single-node SLURM cluster on loopback (munge, slurmctld, slurmd from Debian's
# slurm-wlm), run a tiny config through profiles/slurm, check the results, and stop every
# daemon by PID. Usage: tests/slurm/local_cluster.sh [CONFIG]   (default: config/test.yaml)
# Needs root (the daemons' config must sit at /etc/slurm/slurm.conf: the plugin's job steps drop
# SLURM_CONF), slurm-wlm, munge, and snakemake-executor-plugin-slurm.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
config=${1:-config/test.yaml}
work=$(mktemp -d /tmp/ocgfn-slurm.XXXXXX)
conf=/etc/slurm/slurm.conf
pids=()

stop() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    done
    if [ -f "$work/slurm.conf.orig" ]; then mv "$work/slurm.conf.orig" "$conf"; else rm -f "$conf" /etc/slurm/gres.conf; fi
    [ -f "$work/gres.conf.orig" ] && mv "$work/gres.conf.orig" /etc/slurm/gres.conf
    echo "local SLURM stopped (daemons ${pids[*]:-none}); logs in $work"
}
trap stop EXIT

for tool in munged slurmctld slurmd sbatch squeue; do
    command -v "$tool" >/dev/null || { echo "SKIP: $tool not found (apt-get install slurm-wlm munge)"; exit 77; }
done
python3 -c "import snakemake_executor_plugin_slurm" 2>/dev/null \
    || { echo "SKIP: snakemake-executor-plugin-slurm is not installed (pip install -e '.[slurm]')"; exit 77; }

chmod 755 "$work"
mkdir -p "$work"/{munge,spool,state,log} /etc/slurm
[ -f "$conf" ] && cp "$conf" "$work/slurm.conf.orig"
[ -f /etc/slurm/gres.conf ] && cp /etc/slurm/gres.conf "$work/gres.conf.orig"

# munge with its own key and socket, so nothing of the machine's own munge is touched
dd if=/dev/urandom of="$work/munge/munge.key" bs=1024 count=1 status=none
chown -R munge:munge "$work/munge"; chmod 700 "$work/munge"; chmod 400 "$work/munge/munge.key"
runuser -u munge -- munged --key-file="$work/munge/munge.key" --socket="$work/munge/munge.socket" \
    --pid-file="$work/munge/munged.pid" --log-file="$work/munge/munged.log" --seed-file="$work/munge/seed" --force
sleep 0.5
pids+=("$(cat "$work/munge/munged.pid")")

cpus=$(nproc)
mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
cat > "$conf" <<CONF
ClusterName=ocgfn-local
SlurmctldHost=localhost
SlurmctldPort=16817
SlurmdPort=16818
AuthType=auth/munge
AuthInfo=socket=$work/munge/munge.socket
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmctldLogFile=$work/log/slurmctld.log
SlurmdLogFile=$work/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
GresTypes=gpu
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
# a placeholder GPU, so rules that request gpu=1 are schedulable on this GPU-less node
echo "NodeName=localhost Name=gpu File=/dev/null" > /etc/slurm/gres.conf

slurmctld -i && sleep 1 && pids+=("$(cat "$work/slurmctld.pid")")
slurmd && sleep 1 && pids+=("$(cat "$work/slurmd.pid")")
for _ in $(seq 60); do
    sinfo -h -o %T 2>/dev/null | grep -qx idle && break
    sleep 1
done
sinfo -h -o "%P %T %G" | tee "$work/sinfo.txt"
grep -q idle "$work/sinfo.txt" || { echo "FAIL: the node never became idle"; cat "$work/log/slurmctld.log"; exit 1; }

# run the tiny config through the slurm profile, every training job a real sbatch submission (tables and figures
# are local rules); pre-training asks for gpu=1 as it does with device: cuda (config/test.yaml computes on the CPU)
results="$work/results"
python3 - "$repo/$config" "$results" "$work/config.yaml" <<'PY'
import sys, yaml
config = yaml.safe_load(open(sys.argv[1]))
config["results"] = sys.argv[2]
yaml.safe_dump(config, open(sys.argv[3], "w"))
PY
cd "$repo"
start=$(date +%s)
snakemake all --workflow-profile profiles/slurm --configfile "$work/config.yaml" \
    --slurm-status-command squeue --slurm-no-account --slurm-logdir "$work/slurm-logs" \
    --default-resources slurm_partition=debug runtime=30 mem_mb=1000 gpu=0 \
    --set-resources pretrain:gpu=1 --verbose 2>&1 | tee "$work/snakemake.log"
echo "workflow wall time on local SLURM: $(( $(date +%s) - start )) s"

python3 - "$results" <<'PY'
import sys
from pathlib import Path
import pandas as pd
out = Path(sys.argv[1])
evaluation = pd.read_parquet(out / "tables/evaluation.parquet")
# sample-only methods (MCMC, random search) have no policy, so no exact L1: only the empirical one
assert len(evaluation) > 0 and evaluation["l1"].dropna().between(0, 2).all(), evaluation
assert evaluation["l1_empirical"].between(0, 2).all(), evaluation
assert (out / "report/summary.html").stat().st_size > 10_000
print(f"OK: {len(evaluation)} evaluated policies, report written")
PY
echo "$(grep -c 'submitted with SLURM jobid' "$work/snakemake.log") jobs went through sbatch"
# what sbatch itself was given (--verbose prints each call), not Snakemake's resource lines
gpu_jobs=$(grep "sbatch call:" "$work/snakemake.log" | grep "rule_pretrain" | grep -c -- "--gpus=1" || true)
[ "$gpu_jobs" -gt 0 ] || { echo "FAIL: no pretrain job was submitted with --gpus=1"; exit 1; }
if grep "sbatch call:" "$work/snakemake.log" | grep -q "rule_figure_\|rule_collect\|rule_summary\|rule_run_config\|rule_adapt_task\|rule_all "; then
    echo "FAIL: a local rule (figures, tables, summary) went through sbatch"; exit 1
fi
echo "$gpu_jobs pretrain job(s) submitted with --gpus=1 ran on the placeholder GPU"
