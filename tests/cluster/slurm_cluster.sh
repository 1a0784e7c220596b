#!/usr/bin/env bash
# A multi-node SLURM cluster on this machine, for shortcutbench's integration
# tests (Snakemake's SLURM executor plugin shells out to sbatch/squeue/sacct).
#
#   bash tests/cluster/slurm_cluster.sh install   # apt packages (idempotent)
#   bash tests/cluster/slurm_cluster.sh up        # start + smoke-test (no-op if up)
#   bash tests/cluster/slurm_cluster.sh status
#   bash tests/cluster/slurm_cluster.sh running   # exit 0 iff up (for scripts)
#   bash tests/cluster/slurm_cluster.sh selftest  # re-run the smoke tests
#   bash tests/cluster/slurm_cluster.sh down      # stop what `up` started
#
# What you get (the workflow's SLURM profile needs these names):
#   cluster   shortcutbench
#   partition main      (Default=YES)
#   account   shortcutbench (root's default account; associations are enforced,
#                        so a wrong slurm_account is rejected at submit time)
#   nodes     node1 .. nodeN (N = SHORTCUTBENCH_SLURM_NODES, default 3), each
#             its own slurmd (`slurmd -N nodeK`, own port, spool dir and log)
#             on this host, each with a share of its CPUs (at least one) and
#             of ~95% of its memory; node1 alone has one fake GPU (gres gpu:1
#             backed by /dev/null), so a GPU job must land there.
#
# Config is written to the state dir and installed into /etc/slurm, the
# compiled-in default location, so that every later process (sbatch, sacct,
# the Snakemake plugin, ...) finds it without SLURM_CONF being exported.  This
# is meant for disposable CI/dev boxes: any foreign /etc/slurm/*.conf is moved
# aside once to *.pre-shortcutbench.
#
# Environment:
#   SLURM_STATE_DIR              state/logs/pids (default /tmp/shortcutbench-slurm)
#   SHORTCUTBENCH_SLURM_DB_PORT  private MariaDB TCP port (default 3307, so a
#                                system MariaDB on 3306 is left alone)
#   SHORTCUTBENCH_SLURM_NODES    how many nodes (default 3); node K's slurmd
#                                listens on 127.0.0.1:$((6830 + K))
#
# Daemons are started in the foreground (-D/-F) behind setsid, so $! is the
# daemon itself: its PID goes to $SLURM_STATE_DIR/run/<daemon>.pid and `down`
# stops exactly those PIDs (after checking the PID still runs that binary).
# No systemd/init scripts and no cgroups are used (neither exists here).
set -euo pipefail

STATE_DIR=${SLURM_STATE_DIR:-/tmp/shortcutbench-slurm}
# slurm.conf has no quoting for paths.
[[ $STATE_DIR == /* && $STATE_DIR != *[[:space:]]* ]] \
    || { echo "SLURM_STATE_DIR must be an absolute path without spaces: '$STATE_DIR'" >&2; exit 2; }
DB_PORT=${SHORTCUTBENCH_SLURM_DB_PORT:-3307}
N_NODES=${SHORTCUTBENCH_SLURM_NODES:-3}
[[ $N_NODES =~ ^[1-9][0-9]*$ ]] \
    || { echo "SHORTCUTBENCH_SLURM_NODES must be a whole number of nodes, at least 1: '$N_NODES'" >&2; exit 2; }

CLUSTER=shortcutbench
ACCOUNT=shortcutbench
PARTITION=main
HOST=$(hostname -s)
NODES=()
for ((k = 1; k <= N_NODES; k++)); do NODES+=("node$k"); done
GPU_NODE=node1
SLURMD_PORT_BASE=6830

ETC_DIR=$STATE_DIR/etc
LOG_DIR=$STATE_DIR/log
RUN_DIR=$STATE_DIR/run
SPOOL_DIR=$STATE_DIR/spool
DB_DIR=$STATE_DIR/mariadb
SMOKE_DIR=$STATE_DIR/smoke
SYS_CONF_DIR=/etc/slurm
MARKER="# Managed by shortcutbench tests/cluster/slurm_cluster.sh"

PACKAGES=(munge slurmctld slurmd slurm-client slurmdbd mariadb-server)
# Start order (`down` stops the nodes first, then the rest in reverse).  A
# daemon's id is its binary, and for a node's daemon the node's name too:
# slurmd.node1 runs /usr/sbin/slurmd -N node1.
DAEMONS=(munged mariadbd slurmdbd slurmctld)
for node in "${NODES[@]}"; do DAEMONS+=("slurmd.$node"); done

T0=$(date +%s.%N)
elapsed() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}'; }
log() { printf '[slurm_cluster +%ss] %s\n' "$(elapsed)" "$*" >&2; }
die() { printf '[slurm_cluster] ERROR: %s\n' "$*" >&2; exit 1; }

need_root() { [[ $(id -u) -eq 0 ]] || die "must run as root (daemons run as SlurmUser=root)"; }

# Where a daemon's stderr goes: munged and mariadbd log only there; slurm
# daemons also write a timestamped log/<daemon>.log of their own.
console_log() {
    case $1 in
        slurm*) echo "$LOG_DIR/$1.console.log" ;;
        *)      echo "$LOG_DIR/$1.log" ;;
    esac
}

log_hint() {
    case $1 in
        slurm*) echo "$LOG_DIR/$1.log, $LOG_DIR/$1.console.log" ;;
        *)      echo "$LOG_DIR/$1.log" ;;
    esac
}

# Print the tail of a daemon's logs, to make CI failures self-explaining.
dump_logs() {
    local f
    for f in "$LOG_DIR/$1.log" "$LOG_DIR/$1.console.log"; do
        [[ -s $f ]] || continue
        echo "----- tail $f -----" >&2
        tail -n 25 "$f" >&2
    done
}

daemon_fail() {  # name message
    dump_logs "$1"
    die "$1: $2 (logs: $(log_hint "$1"))"
}

# ---------------------------------------------------------------- PIDs -----

pidfile() { echo "$RUN_DIR/$1.pid"; }

# Pid files the daemons write themselves (slurm's *PidFile, mariadbd
# --pid-file) are kept apart from ours: daemons delete theirs early during
# shutdown, which would make a still-running daemon look stopped.
daemon_own_pidfile() { echo "$RUN_DIR/$1.self.pid"; }

# Is PID alive (not a zombie: those have exited and only wait for init to
# reap them, which PID 1 here does lazily) and still running the binary of
# daemon NAME (slurmd.node1: slurmd)?  The check guards against PID reuse
# after a reboot or a stale state dir.
pid_is() {
    local pid=$1 name=${2%%.*} st argv0=
    [[ -n $pid && -d /proc/$pid ]] || return 1
    st=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 1
    [[ -n $st && $st != Z ]] || return 1
    IFS= read -r -d '' argv0 2>/dev/null <"/proc/$pid/cmdline" || true
    [[ ${argv0##*/} == "$name" ]]
}

# PID from our pidfile, if that daemon is running.
our_pid() {
    local name=$1 pid
    pid=$(tr -dc '0-9' 2>/dev/null <"$(pidfile "$name")") || return 1
    pid_is "$pid" "$name" || return 1
    echo "$pid"
}

# Start a daemon that stays in the foreground; setsid detaches it from the
# caller's session (CI step's Ctrl-C / process-group kill), and since a
# background child of a non-interactive shell is no group leader, setsid execs
# in place, so $! ends up being the daemon's own PID.
launch() {
    local name=$1 pid i; shift
    setsid "$@" </dev/null >>"$(console_log "$name")" 2>&1 &
    pid=$!
    echo "$pid" >"$(pidfile "$name")"
    # Wait for the exec chain (bash -> setsid [-> setpriv] -> daemon) to land,
    # so later liveness checks never see a half-exec'd PID as "not running".
    for ((i = 0; i < 50; i++)); do
        pid_is "$pid" "$name" && return 0
        [[ -d /proc/$pid ]] || break
        sleep 0.1
    done
    daemon_fail "$name" "did not start or exited at once (pid $pid: $*)"
}

# wait_until TIMEOUT DAEMONS DESCRIPTION CMD...: poll CMD; fail fast (with
# the daemon's logs) if one of DAEMONS (space-separated ids) dies meanwhile,
# which is what usually happens on a config error.
wait_until() {
    local timeout=$1 daemons=$2 what=$3; shift 3
    local deadline=$((SECONDS + timeout)) daemon
    until "$@" >/dev/null 2>&1; do
        for daemon in $daemons; do
            if [[ -e $(pidfile "$daemon") ]] && ! our_pid "$daemon" >/dev/null; then
                daemon_fail "$daemon" "exited while waiting for: $what"
            fi
        done
        if ((SECONDS >= deadline)); then
            for daemon in $daemons; do dump_logs "$daemon"; done
            die "timed out after ${timeout}s waiting for: $what${daemons:+ (logs: $LOG_DIR)}"
        fi
        sleep 0.3
    done
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Refuse to start next to a foreign daemon on the same port: it would either
# make ours fail obscurely or make the tests talk to someone else's cluster.
check_port_free() {  # daemon port
    if port_busy "$2"; then
        die "$1: port $2 on 127.0.0.1 is already in use by a process this script did not start; stop it or run 'down' for its state dir"
    fi
}

# ------------------------------------------------------------- install -----

cmd_install() {
    need_root
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep 'install ok installed' >/dev/null || missing+=("$p")
    done
    if ((${#missing[@]} == 0)); then
        log "all packages already installed: ${PACKAGES[*]}"
        return 0
    fi
    log "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    # Recommends are not needed and only slow CI down.
    apt-get install -y -q --no-install-recommends "${missing[@]}"
}

check_installed() {
    local b
    for b in munged munge unmunge mariadbd mariadb-install-db mariadb-admin \
             slurmdbd slurmctld slurmd sbatch sacct sacctmgr sinfo scontrol setpriv; do
        command -v "$b" >/dev/null 2>&1 || die "'$b' not found; run: bash $0 install"
    done
}

# -------------------------------------------------------------- config -----

write_configs() {
    mkdir -p "$ETC_DIR" "$LOG_DIR" "$RUN_DIR" "$SPOOL_DIR/slurmctld" "$SPOOL_DIR/slurmd" \
             "$DB_DIR" "$SMOKE_DIR"
    chmod 700 "$ETC_DIR"

    # Every node gets an equal share of what slurmd detects on this host,
    # rounded down (at least one CPU: more nodes than CPUs share them).  The
    # node lines differ from the hardware on purpose, which slurmctld accepts
    # only with SlurmdParameters=config_overrides.  Memory is lowered a bit
    # so that a share never exceeds what is there (the detected value can
    # shrink slightly between boots).
    local detected cpus mem node_cpus node_mem
    detected=$(slurmd -C)
    cpus=$(sed -n 's/.* CPUs=\([0-9]*\).*/\1/p' <<<"$detected")
    mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$detected")
    [[ $cpus =~ ^[0-9]+$ && $mem =~ ^[0-9]+$ ]] || die "cannot parse 'slurmd -C' output: $detected"
    node_cpus=$((cpus / N_NODES > 0 ? cpus / N_NODES : 1))
    node_mem=$((mem * 95 / 100 / N_NODES))

    local node_lines="" k node gres
    for ((k = 1; k <= N_NODES; k++)); do
        node=${NODES[k - 1]}
        gres=""
        [[ $node == "$GPU_NODE" ]] && gres=" Gres=gpu:1"
        mkdir -p "$SPOOL_DIR/slurmd/$node"
        node_lines+="NodeName=$node NodeHostname=$HOST NodeAddr=127.0.0.1 Port=$(slurmd_port "$k")"
        node_lines+=" CPUs=$node_cpus RealMemory=$node_mem$gres State=UNKNOWN"$'\n'
    done

    cat >"$ETC_DIR/slurm.conf" <<EOF
$MARKER -- regenerated by 'up'; edit the script, not this file.
ClusterName=$CLUSTER
# Node and controller addresses are pinned to loopback: no network but lo here.
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
# A requeued job (its node failed) waits cred_expire + 1 s before it starts
# again, 121 s by default, and sacct shows it as NODE_FAIL meanwhile.  30 s
# keeps the tests short and is still longer than the gaps between the
# plugin's status checks in them (1, 11, 21 s while nothing ends), so that the
# plugin sees the NODE_FAIL.  Job steps here start in well under a second.
AuthInfo=cred_expire=30

StateSaveLocation=$SPOOL_DIR/slurmctld
# Several slurmd on one host (slurmd -N NAME): %n is the node's name.
SlurmdSpoolDir=$SPOOL_DIR/slurmd/%n
SlurmctldPidFile=$(daemon_own_pidfile slurmctld)
SlurmdPidFile=$(daemon_own_pidfile "slurmd.%n")
SlurmdParameters=config_overrides
# In the foreground (-D) slurm daemons log to stderr too, but without
# timestamps; the script keeps that as log/<daemon>.console.log because early
# fatal errors (bad config) only show up there.
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.%n.log
SlurmctldDebug=info
SlurmdDebug=info
# The default MailProg does not exist here and slurmctld complains about it.
MailProg=/bin/true

# No usable cgroups on this machine.  A job's processes are tracked by their
# process group: when a node fails, SLURM kills the whole group after
# KillWait.  (proctrack/linuxproc follows parent links, and misses a process
# whose parent died first: Snakemake inside a job then outlives it.)
ProctrackType=proctrack/pgid
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30

SelectType=select/cons_tres
# CR_CPU (not CR_Core) so one task takes one CPU even on SMT hosts; memory is
# consumable so --mem requests are checked.
SelectTypeParameters=CR_CPU_Memory
DefMemPerCPU=$((node_mem / node_cpus))
# Reject jobs that can never run at submit time instead of leaving them
# pending forever (a pending-forever job hangs a Snakemake run).
EnforcePartLimits=ALL
GresTypes=gpu

# sacct (and so Snakemake's SLURM plugin) needs slurmdbd accounting.
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=6819
AccountingStorageEnforce=associations
AccountingStorageTRES=gres/gpu
JobCompType=jobcomp/none
# Keep sbatch --comment in the accounting DB: Snakemake's plugin puts the
# rule (and wildcards) there, so 'sacct -o JobIDRaw,Comment' says which job
# of the workflow a SLURM job was.
AccountingStoreFlags=job_comment

# Keep finished jobs visible in squeue for 10 min.
MinJobAge=600
SlurmdTimeout=30
SlurmctldTimeout=30
InactiveLimit=0
KillWait=5
Waittime=0
# A node that stopped answering (e.g. after 'down'/'up') rejoins by itself
# when its slurmd registers again; one set DOWN or DRAIN by hand stays so
# until 'scontrol update NodeName=... State=RESUME', as on a real cluster.
ReturnToService=1
# A batch job whose node fails is requeued (SLURM's default, spelled out:
# the workflow's profile relies on it, see workflow/profiles/slurm/README.md).
JobRequeue=1

${node_lines}PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF

    # A fake GPU on one node: File=/dev/null gives gres/gpu a device to bind
    # without any hardware; a bare Count= would mark the node invalid.
    cat >"$ETC_DIR/gres.conf" <<EOF
$MARKER
AutoDetect=off
NodeName=$GPU_NODE Name=gpu File=/dev/null
EOF

    # The DB password lives only in the state dir; keep it across 'up's so an
    # existing MariaDB datadir keeps working.
    if [[ ! -s $ETC_DIR/db.pass ]]; then
        (umask 077; od -An -N12 -tx1 /dev/urandom | tr -d ' \n' >"$ETC_DIR/db.pass")
    fi
    local pass
    pass=$(cat "$ETC_DIR/db.pass")

    (umask 077
    cat >"$ETC_DIR/slurmdbd.conf" <<EOF
$MARKER
AuthType=auth/munge
DbdHost=$HOST
DbdAddr=127.0.0.1
DbdPort=6819
SlurmUser=root
DebugLevel=info
LogFile=$LOG_DIR/slurmdbd.log
PidFile=$(daemon_own_pidfile slurmdbd)
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$pass
StorageLoc=slurm_acct_db
EOF
    # Runs at every MariaDB start, so it must be idempotent.
    cat >"$ETC_DIR/mariadb-init.sql" <<EOF
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$pass';
ALTER USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$pass';
GRANT ALL PRIVILEGES ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
EOF
    )

    install_system_configs
}

# Copy the configs to /etc/slurm, the place every SLURM client looks by default.
install_system_configs() {
    mkdir -p "$SYS_CONF_DIR"
    local f
    for f in slurm.conf gres.conf slurmdbd.conf cgroup.conf; do
        local dst=$SYS_CONF_DIR/$f
        if [[ -e $dst ]] && ! grep -qF "$MARKER" "$dst"; then
            log "moving foreign $dst aside to $dst.pre-shortcutbench"
            mv -f "$dst" "$dst.pre-shortcutbench"
        fi
        [[ -e $ETC_DIR/$f ]] || continue
        # slurmdbd refuses a slurmdbd.conf readable by others (it has the DB password).
        if [[ $f == slurmdbd.conf ]]; then
            install -m 600 -o root -g root "$ETC_DIR/$f" "$dst"
        else
            install -m 644 -o root -g root "$ETC_DIR/$f" "$dst"
        fi
    done
}

# ------------------------------------------------------------- daemons -----

munge_works() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }

start_munged() {
    if our_pid munged >/dev/null; then return 0; fi
    # Another munged on the default socket (e.g. a system one) works just as
    # well; reuse it and leave it alone on 'down'.
    if munge_works; then
        log "munged: reusing an already running munged (not ours, 'down' leaves it)"
        rm -f "$(pidfile munged)"
        return 0
    fi
    # munged runs as the 'munge' user, like the Debian service does; it insists
    # on owning its key, socket dir and pid file.
    if [[ ! -s /etc/munge/munge.key ]]; then
        log "munged: creating /etc/munge/munge.key"
        setpriv --reuid=munge --regid=munge --init-groups -- mungekey --create
    fi
    # /run/munge is normally made by systemd-tmpfiles.  munged keeps its own
    # pid file there (the state dir may not be reachable for user 'munge');
    # ours is in $RUN_DIR like the others.
    install -d -o munge -g munge -m 755 /run/munge
    log "starting munged"
    launch munged setpriv --reuid=munge --regid=munge --init-groups -- /usr/sbin/munged -F
    wait_until 15 munged "munge credential round trip (munge -n | unmunge)" munge_works
}

mariadb_ping() {
    mariadb-admin --no-defaults --connect-timeout=2 --socket="$DB_DIR/mysqld.sock" -uroot ping
}

slurm_db_login_works() {
    MYSQL_PWD=$(cat "$ETC_DIR/db.pass") mariadb --no-defaults --connect-timeout=2 \
        -h127.0.0.1 -P"$DB_PORT" -uslurm -e 'SELECT 1' slurm_acct_db
}

start_mariadbd() {
    if our_pid mariadbd >/dev/null; then return 0; fi
    check_port_free mariadbd "$DB_PORT"
    # A private datadir keeps the system MariaDB (if any) untouched; it is
    # created once and reused, so accounting history survives 'down'/'up'.
    if [[ ! -d $DB_DIR/data/mysql ]]; then
        log "initialising MariaDB datadir $DB_DIR/data"
        rm -rf "$DB_DIR/data"
        mariadb-install-db --no-defaults --user=root --datadir="$DB_DIR/data" \
            --auth-root-authentication-method=socket --skip-test-db \
            >"$LOG_DIR/mariadb-install-db.log" 2>&1 \
            || { tail -n 30 "$LOG_DIR/mariadb-install-db.log" >&2;
                 die "mariadb-install-db failed (log: $LOG_DIR/mariadb-install-db.log)"; }
    fi
    log "starting mariadbd on 127.0.0.1:$DB_PORT"
    # --no-defaults: ignore /etc/mysql (it points at the system datadir and
    # socket).  Durability settings are relaxed: this DB is throwaway and
    # fsyncs would dominate slurmdbd's first-start schema creation.
    launch mariadbd /usr/sbin/mariadbd --no-defaults --user=root \
        --datadir="$DB_DIR/data" --socket="$DB_DIR/mysqld.sock" \
        --pid-file="$(daemon_own_pidfile mariadbd)" \
        --bind-address=127.0.0.1 --port="$DB_PORT" --skip-name-resolve \
        --init-file="$ETC_DIR/mariadb-init.sql" \
        --innodb-buffer-pool-size=256M --innodb-lock-wait-timeout=900 \
        --innodb-flush-log-at-trx-commit=0 --innodb-doublewrite=0 --sync-binlog=0
    wait_until 30 mariadbd "MariaDB to answer on $DB_DIR/mysqld.sock" mariadb_ping
    wait_until 10 mariadbd "MariaDB login as user 'slurm' on 127.0.0.1:$DB_PORT" slurm_db_login_works
}

start_slurmdbd() {
    if our_pid slurmdbd >/dev/null; then return 0; fi
    check_port_free slurmdbd 6819
    log "starting slurmdbd"
    launch slurmdbd /usr/sbin/slurmdbd -D
    # The first start creates the accounting schema, which takes a few seconds.
    wait_until 60 slurmdbd "slurmdbd to answer sacctmgr" sacctmgr -n list cluster
}

# Must run before slurmctld starts: slurmctld registers its cluster with
# slurmdbd at startup and, with AccountingStorageEnforce=associations, only
# accepts jobs for associations it has loaded.
register_accounting() {
    if ! sacctmgr -n -P list cluster format=cluster | grep -x "$CLUSTER" >/dev/null; then
        sacctmgr -i add cluster "$CLUSTER" >/dev/null
    fi
    if ! sacctmgr -n -P list account format=account | grep -x "$ACCOUNT" >/dev/null; then
        sacctmgr -i add account "$ACCOUNT" Cluster="$CLUSTER" \
            Description="shortcutbench tests" Organization=shortcutbench >/dev/null
    fi
    if ! sacctmgr -n -P list assoc cluster="$CLUSTER" account="$ACCOUNT" user=root format=user | grep -x root >/dev/null; then
        sacctmgr -i add user root Account="$ACCOUNT" Cluster="$CLUSTER" >/dev/null
    fi
    sacctmgr -i modify user root set DefaultAccount="$ACCOUNT" >/dev/null || true
    sacctmgr -n -P list assoc cluster="$CLUSTER" account="$ACCOUNT" user=root format=user | grep -x root >/dev/null \
        || daemon_fail slurmdbd "association root/$ACCOUNT/$CLUSTER missing after sacctmgr add"
}

ctld_up() { scontrol ping 2>/dev/null | grep 'is UP' >/dev/null; }

start_slurmctld() {
    if our_pid slurmctld >/dev/null; then return 0; fi
    check_port_free slurmctld 6817
    log "starting slurmctld"
    launch slurmctld /usr/sbin/slurmctld -D
    wait_until 30 slurmctld "slurmctld to answer 'scontrol ping'" \
        ctld_up
}

slurmd_port() { echo $((SLURMD_PORT_BASE + $1)); }  # of node K

start_slurmds() {
    local k node
    for ((k = 1; k <= N_NODES; k++)); do
        node=${NODES[k - 1]}
        if our_pid "slurmd.$node" >/dev/null; then continue; fi
        check_port_free "slurmd.$node" "$(slurmd_port "$k")"
        log "starting slurmd for $node (port $(slurmd_port "$k"))"
        launch "slurmd.$node" /usr/sbin/slurmd -D -N "$node"
    done
}

# The node daemons any 'up' started, whatever SHORTCUTBENCH_SLURM_NODES says
# now; plain 'slurmd' in a state dir of the one-node version of this script.
started_slurmds() {
    local f id
    [[ -e $RUN_DIR/slurmd.pid ]] && echo slurmd
    for f in "$RUN_DIR"/slurmd.*.pid; do
        [[ -e $f && $f != *.self.pid ]] || continue
        id=${f##*/}
        echo "${id%.pid}"
    done
}

node_state() { sinfo -h -n "$1" -o %T 2>/dev/null; }

# Every node's slurmd has registered: slurmctld marks a node it has not
# heard from with '*' (idle*, down*) or as unknown.
all_nodes_registered() {
    local node st
    for node in "${NODES[@]}"; do
        st=$(node_state "$node") || return 1
        [[ -n $st && $st != *'*' && $st != unknown* ]] || return 1
    done
}

# Exactly NODES, each of which takes jobs.
all_nodes_take_jobs() {
    local node st
    [[ $(sinfo -h -N -o %N 2>/dev/null | sort -u) == "$(printf '%s\n' "${NODES[@]}" | sort)" ]] \
        || return 1
    for node in "${NODES[@]}"; do
        st=$(node_state "$node") || return 1
        [[ $st == idle || $st == mixed || $st == allocated ]] || return 1
    done
}

# A node set DOWN or DRAIN by hand stays so across restarts
# (ReturnToService=1), e.g. after a node-failure test that was interrupted;
# 'up' means every node takes jobs, so such a node is resumed.
resume_nodes_set_aside() {
    local node st
    for node in "${NODES[@]}"; do
        st=$(node_state "$node") || continue
        case $st in
            down | drain* | drained)
                log "resuming $node, left $st ($(sinfo -h -n "$node" -o %E))"
                scontrol update NodeName="$node" State=RESUME
                ;;
        esac
    done
}

# ----------------------------------------------------------- smoke test -----

# Both job IDs listed as COMPLETED by a name-filtered sacct query.
sacct_lists_completed() {
    local out
    out=$(sacct -X -n -P --name=sb-smoke-srun,sb-smoke-gpu -S now-1days -E now -o JobIDRaw,State) || return 1
    grep -x "$1|COMPLETED" <<<"$out" >/dev/null && grep -x "$2|COMPLETED" <<<"$out" >/dev/null
}

node_daemons() { local node; for node in "${NODES[@]}"; do printf 'slurmd.%s ' "$node"; done; }

# Checks what the workflow relies on: sbatch and srun run jobs on every node,
# sacct sees them (Snakemake's plugin submits with sbatch and polls sacct),
# the fake GPU is schedulable on its node and only there, and an impossible
# request is rejected at once instead of pending forever.  The batch job is
# polled through sacct rather than with `sbatch --wait`, whose back-off
# polling adds up to ~10 s.
cmd_selftest() {
    check_installed
    local t0=$SECONDS out jid_srun jid_batch cpus ran_on gpu_node

    # shellcheck disable=SC2016  # expanded inside the job, not here
    jid_batch=$(timeout 30 sbatch --parsable --gpus=1 --job-name=sb-smoke-gpu \
        -D "$SMOKE_DIR" -o "$SMOKE_DIR/%j.out" \
        --wrap 'echo "gpus=$SLURM_GPUS cuda=${CUDA_VISIBLE_DEVICES-unset}"') \
        || daemon_fail slurmctld "'sbatch --gpus=1' was rejected"
    jid_batch=${jid_batch%%;*}

    # One task on every node, in one job step.
    # shellcheck disable=SC2016  # expanded inside the job, not here
    out=$(timeout 60 srun --quiet -N"$N_NODES" --ntasks-per-node=1 --job-name=sb-smoke-srun \
        bash -c 'echo "$SLURM_JOB_ID $SLURMD_NODENAME"') \
        || daemon_fail slurmctld "trivial 'srun' job on all $N_NODES nodes failed"
    jid_srun=$(awk 'NR == 1 {print $1}' <<<"$out")
    ran_on=$(awk '{print $2}' <<<"$out" | sort | tr '\n' ' ')
    [[ $ran_on == "$(printf '%s\n' "${NODES[@]}" | sort | tr '\n' ' ')" ]] \
        || die "an srun on all nodes ran on '$ran_on', expected ${NODES[*]}"

    cpus=$(sinfo -h -N -o %c | sort -n | tail -n 1)
    if out=$(timeout 20 sbatch --parsable -N1 -n1 --cpus-per-task=$((cpus + 1)) \
            --job-name=sb-smoke-toobig -o /dev/null --wrap true 2>&1); then
        scancel "${out%%;*}" 2>/dev/null || true
        die "a job asking for $((cpus + 1)) CPUs on nodes of at most $cpus was accepted (EnforcePartLimits not in effect?)"
    fi
    log "smoke: $((cpus + 1))-CPU job rejected at submit: $out"

    # slurmctld forwards job records to slurmdbd asynchronously, and right
    # after slurmctld (re)starts a job's end can reach the DB before its
    # start, leaving a placeholder row named "allocation" for a second or so.
    # So query the way Snakemake's plugin does (by job name) until both jobs
    # show up there as COMPLETED.
    wait_until 60 "$(node_daemons)" "sacct --name to list jobs $jid_srun (srun) and $jid_batch (sbatch --gpus=1) as COMPLETED (batch output: $SMOKE_DIR/$jid_batch.out)" \
        sacct_lists_completed "$jid_srun" "$jid_batch"
    gpu_node=$(sacct -X -n -P -j "$jid_batch" -o NodeList)
    [[ $gpu_node == "$GPU_NODE" ]] || die "the GPU job $jid_batch ran on '$gpu_node', not on $GPU_NODE, the one node with a GPU"
    log "smoke: srun job $jid_srun ran on ${ran_on% }; sbatch --gpus=1 job $jid_batch on $gpu_node;" \
        "batch output: $(cat "$SMOKE_DIR/$jid_batch.out" 2>/dev/null); selftest took $((SECONDS - t0))s"
}

# ----------------------------------------------------------------- up -----

all_ours_running() {
    local d
    for d in "${DAEMONS[@]}"; do
        if [[ $d == munged ]] && ! [[ -e $(pidfile munged) ]] && munge_works; then continue; fi
        our_pid "$d" >/dev/null || return 1
    done
}

# What slurmctld and the slurmds read, once, when they start: `up` restarts
# them when it writes other configs (another SHORTCUTBENCH_SLURM_NODES, a
# new version of this script).
slurm_configs() { cat "$ETC_DIR/slurm.conf" "$ETC_DIR/gres.conf" 2>/dev/null || true; }

cmd_up() {
    need_root
    check_installed
    if all_ours_running && ctld_up && all_nodes_take_jobs; then
        log "already up (state dir $STATE_DIR); nothing to do"
        return 0
    fi
    mkdir -p "$STATE_DIR"
    local before
    before=$(slurm_configs)
    write_configs
    if [[ -n $before && $before != "$(slurm_configs)" ]] && our_pid slurmctld >/dev/null; then
        log "slurm.conf changed: restarting slurmctld and the nodes"
        stop_slurm_daemons
    fi
    start_munged
    start_mariadbd
    start_slurmdbd
    register_accounting
    start_slurmctld
    start_slurmds
    wait_until 30 "$(node_daemons)" "every node's slurmd to register (see: sinfo -N; $LOG_DIR/slurmd.NODE.log)" \
        all_nodes_registered
    resume_nodes_set_aside
    wait_until 30 "$(node_daemons)" "every node to take jobs (see: sinfo -N; sinfo -R)" all_nodes_take_jobs
    cmd_selftest
    log "cluster up in $(elapsed)s:" \
        "cluster=$CLUSTER partition=$PARTITION account=$ACCOUNT nodes=${NODES[*]} state=$STATE_DIR"
}

# --------------------------------------------------------------- down -----

stop_daemon() {
    local name=$1 pid i
    if ! pid=$(our_pid "$name"); then
        rm -f "$(pidfile "$name")"
        return 0
    fi
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do   # 20 s: mariadbd flushes, slurmctld saves state
        pid_is "$pid" "$name" || { rm -f "$(pidfile "$name")"; return 0; }
        sleep 0.2
    done
    log "$name (pid $pid) ignored SIGTERM for 20s; sending SIGKILL (logs: $(log_hint "$name"))"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 25; i++)); do
        pid_is "$pid" "$name" || { rm -f "$(pidfile "$name")"; return 0; }
        sleep 0.2
    done
    die "$name (pid $pid) survived SIGKILL"
}

# Every node daemon any 'up' started, then slurmctld.
stop_slurm_daemons() {
    local id
    for id in $(started_slurmds); do stop_daemon "$id"; done
    stop_daemon slurmctld
}

cmd_down() {
    need_root
    [[ -d $RUN_DIR ]] || { log "not up (no $RUN_DIR); nothing to do"; return 0; }
    # Cancel leftover jobs first so slurmd's job steps (slurmstepd) end with it.
    if our_pid slurmctld >/dev/null && command -v squeue >/dev/null; then
        local jobs
        jobs=$(timeout 10 squeue -h -t PENDING,RUNNING,SUSPENDED,CONFIGURING,COMPLETING -o %i 2>/dev/null || true)
        if [[ -n $jobs ]]; then
            log "cancelling leftover jobs: ${jobs//$'\n'/ }"
            # shellcheck disable=SC2086
            timeout 10 scancel $jobs 2>/dev/null || true
            local deadline=$((SECONDS + 15))
            while [[ -n $(timeout 10 squeue -h -t RUNNING,COMPLETING,CONFIGURING -o %i 2>/dev/null || true) ]] \
                  && ((SECONDS < deadline)); do sleep 0.5; done
        fi
    fi
    local i pid id stopped=()
    for id in $(started_slurmds) slurmctld slurmdbd mariadbd munged; do
        pid=$(our_pid "$id") && stopped+=("$pid")
    done
    stop_slurm_daemons
    for id in slurmdbd mariadbd munged; do stop_daemon "$id"; done
    # Exited daemons linger as zombies until PID 1 reaps them, which it does
    # lazily on this machine (~2 s); wait a little so `ps` right after `down`
    # is clean, but don't fail on it: a zombie is not a running daemon.
    for ((i = 0; i < 25; i++)); do
        local left=0
        for pid in "${stopped[@]}"; do [[ -d /proc/$pid ]] && left=1; done
        ((left)) || break
        sleep 0.2
    done
    uninstall_system_configs
    log "down: no daemon started by this script is running"
}

# Take our configs out of /etc/slurm again (and put back what `up` moved
# aside).  With a slurm.conf naming a controller that is down, every SLURM
# client call waits for it, and so does every snakemake start: the SLURM
# executor plugin runs `scontrol show config` (10 s timeout) when imported.
uninstall_system_configs() {
    local f dst
    for f in slurm.conf gres.conf slurmdbd.conf cgroup.conf; do
        dst=$SYS_CONF_DIR/$f
        if [[ -e $dst ]] && grep -qF "$MARKER" "$dst"; then
            rm -f "$dst"
        fi
        if [[ -e $dst.pre-shortcutbench && ! -e $dst ]]; then
            mv -f "$dst.pre-shortcutbench" "$dst"
        fi
    done
}

# ------------------------------------------------------------- status -----

cmd_status() {
    local d pid any=0
    echo "state dir: $STATE_DIR   cluster=$CLUSTER partition=$PARTITION account=$ACCOUNT nodes=${NODES[*]}"
    for d in munged mariadbd slurmdbd slurmctld $( (printf 'slurmd.%s\n' "${NODES[@]}"; started_slurmds) | sort -u); do
        if pid=$(our_pid "$d"); then
            printf '  %-14s running (pid %s)\n' "$d" "$pid"; any=1
        elif [[ $d == munged ]] && munge_works; then
            printf '  %-14s running (not started by this script)\n' "$d"
        else
            printf '  %-14s stopped\n' "$d"
        fi
    done
    if ((any)) && ctld_up; then
        sinfo -N -o '%N %P %T %c %m %G' 2>/dev/null | sed 's/^/  /' || true
    fi
}

case ${1:-} in
    install)  cmd_install ;;
    up)       cmd_up ;;
    down)     cmd_down ;;
    status)   cmd_status ;;
    running)  all_ours_running && ctld_up && all_nodes_take_jobs ;;
    selftest) cmd_selftest ;;
    *) echo "usage: $0 {install|up|down|status|running|selftest}" >&2; exit 2 ;;
esac
