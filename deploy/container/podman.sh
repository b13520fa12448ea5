# Sourced by the container scripts: podman with the settings this kind of
# machine needs (a root VM with cgroups v1/v2 hybrid and no CAP_SYS_RESOURCE).
#  - runc, not crun: crun 1.8 refuses hybrid cgroups ("cgroups in hybrid
#    mode not supported, drop all controllers from cgroupv2").
#  - Resource limits no higher than this shell's: podman's defaults raise
#    RLIMIT_NOFILE and RLIMIT_NPROC, which needs CAP_SYS_RESOURCE ("crun:
#    setrlimit `RLIMIT_NOFILE`: Operation not permitted").
# Elsewhere these are harmless. Defines PODMAN (an array) and ULIMITS.
PODMAN=(podman)
if command -v runc >/dev/null 2>&1; then PODMAN+=(--runtime runc); fi
#    A build's RUN steps fail above 4096 processes here even with a higher
#    hard limit (buildah lowers its own), so 4096: plenty for one server.
upto() { local v=$1; [ "$v" = unlimited ] && v=$2; echo $((v / 2 < $2 ? v / 2 : $2)); }
nofile=$(upto "$(ulimit -Hn)" 65536)
nproc=$(upto "$(ulimit -Hu)" 4096)
ULIMITS=(--ulimit "nofile=$nofile:$nofile" --ulimit "nproc=$nproc:$nproc")
