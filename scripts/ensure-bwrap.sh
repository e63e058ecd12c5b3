#!/usr/bin/env bash
# Make sure bubblewrap (bwrap) works here: the local pool runs session code only inside its sandbox.
# Also slirp4netns, which gives EgressEnabled sessions their own outbound-only network, and libseccomp,
# which builds the seccomp filter of every sandbox.
#   exit 0  bwrap, slirp4netns and libseccomp are installed and bwrap can create its namespaces (installing them
#           first when run as root with apt-get, as CI does);
#   exit 1  it is missing and cannot be installed from here, or user namespaces are blocked: the
#           message on stderr says the exact command that fixes it.
set -euo pipefail

USERNS_COMMAND="sysctl -w kernel.apparmor_restrict_unprivileged_userns=0"

# The same kind of sandbox the pool makes, doing nothing; as root, started as nobody, as the pool does.
probe() {
    local as_pool=()
    if [ "$(id -u)" = 0 ]; then
        as_pool=(setpriv --reuid=65534 --regid=65534 --clear-groups)
    fi
    "${as_pool[@]}" bwrap --unshare-all --unshare-user --die-with-parent --new-session \
        --ro-bind /usr /usr --symlink usr/lib /lib --symlink usr/lib64 /lib64 --symlink usr/bin /bin \
        -- /usr/bin/true
}

# install PACKAGE NAME WHAT: install PACKAGE when we are root with apt-get, else say what needs NAME
# and the command that installs it.
install() {
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "ensure-bwrap: installing $1 (apt-get install $1)" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >/dev/null
    else
        echo "ensure-bwrap: $1 ($2) is not installed; $3 need it: sudo apt-get install $1" >&2
        exit 1
    fi
}

# ensure_installed COMMAND PACKAGE WHAT: install PACKAGE when COMMAND is missing.
ensure_installed() {
    command -v "$1" >/dev/null 2>&1 || install "$2" "$1" "$3"
}

# libseccomp builds the seccomp filter of every sandbox; pyseccomp finds it as ctypes does, by ldconfig's cache.
has_libseccomp() {
    PATH="$PATH:/sbin:/usr/sbin" ldconfig -p 2>/dev/null | grep -q 'libseccomp\.so\.2 '
}

ensure_installed bwrap bubblewrap "the local pool's sessions"
ensure_installed slirp4netns slirp4netns "EgressEnabled local pools"
has_libseccomp || install libseccomp2 libseccomp.so.2 "the local pool's sandboxes (their seccomp filter)"

if ! said=$(probe 2>&1); then
    echo "ensure-bwrap: bwrap cannot create its namespaces here ($said);" \
        "allow unprivileged user namespaces, e.g. on Ubuntu 24.04: sudo $USERNS_COMMAND" >&2
    exit 1
fi
