# Sourced by .ci/run (bash): iproute2 (ip, tc) for the assessment's emulated WAN
# (src/privfin/assess/netem.py, tests/assess/measure/test_netem.py).
#
# Installed from the Debian packages if missing (as root). The netem test still needs a kernel
# with the sch_netem qdisc; without it the test skips with "tc netem not available ... install"
# (allowed, with PRIVFIN_STRICT_SKIPS=1, like a missing PostgreSQL) and the assessment records
# wan_mode "loopback-fallback: <reason>".

if { ! command -v ip >/dev/null 2>&1 || ! command -v tc >/dev/null 2>&1; } \
    && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing iproute2 (apt-get) for the emulated WAN of the assessment" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 >/dev/null
fi
