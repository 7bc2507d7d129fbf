#!/bin/sh
# /init of the xenmq lab's initramfs, in dom0 and in the domU alike.
#
# Written for `xenmq lab run` (xenmq-lab/src): the host reads the serial
# console, where this script prints lines starting with "@xenmq-lab " (stage
# marks and results), "0| " (the dom0 program's output) and "U| " (the domU
# program's output, relayed by dom0 at the end). Settings come from
# /lab/settings, written by the host: ARGS0/ARGSU (shell-quoted argument
# lists), TIMEOUT (s), DOMU_MEM (MiB), DOMU_CMDLINE.
PATH=/bin:/sbin:/usr/bin:/usr/sbin:/usr/lib/xen-4.17/bin
export PATH

mark() { echo "@xenmq-lab $*"; }

mounts() {
    mount -t proc proc /proc
    mount -t sysfs sys /sys
    mount -t devtmpfs dev /dev
    mount -t tmpfs run /run
    mount -t tmpfs tmp /tmp
    mkdir -p /dev/pts /run/xen /run/xenstored /var/run
    mount -t devpts pts /dev/pts
    for m in xen-evtchn xen-gntdev xen-gntalloc xen-privcmd xenfs; do
        insmod /lib/modules/$m.ko || mark "warn insmod $m"
    done
    mount -t xenfs xenfs /proc/xen
}

# prefix P: copy stdin to stdout, each line prefixed (a last line without a
# newline included)
prefix() {
    while IFS= read -r line || [ -n "$line" ]; do echo "$1$line"; done
}

# run ROLE PREFIX DOMID PEER ARGS: runs /lab/ROLE/prog in /lab/ROLE with the
# shell-quoted argument list ARGS, output prefixed on stdout, exit code into
# /tmp/ROLE.rc once the output is all out
run() {
    role=$1 pfx=$2 id=$3 peer=$4
    eval "set -- $5"
    cd "/lab/$role" || return
    { XENMQ_LAB_ROLE=$role XENMQ_LAB_DOMID=$id XENMQ_LAB_PEER_DOMID=$peer \
        ./prog "$@" </dev/null 2>&1
      echo $? >"/tmp/$role.rc.part"; } | prefix "$pfx"
    mv "/tmp/$role.rc.part" "/tmp/$role.rc"
}

uptime_s() { cut -d. -f1 /proc/uptime; }

domu_main() {
    exec >/dev/console 2>&1
    mark stage domu-init
    me=$(xenstore-read domid)
    run domu 'U| ' "$me" 0 "$ARGSU"
    mark exit-domu "$(cat /tmp/domu.rc)"
    sleep 1 # let xenconsoled drain our console ring before the domain dies
    poweroff -f
}

dom0_fail() {
    mark fail "$*"
    mark end
    poweroff -f
}

dom0_main() {
    exec >/dev/console 2>&1
    mark stage dom0-init
    xenstored --pid-file=/run/xenstored.pid || dom0_fail "xenstored did not start"
    n=0
    until xenstore-read / >/dev/null 2>&1; do
        n=$((n + 1)); [ $n -gt 100 ] && dom0_fail "xenstored does not answer"
        sleep 0.1
    done
    xen-init-dom0 >/dev/null || dom0_fail "xen-init-dom0 failed"
    xenconsoled --pid-file=/run/xenconsoled.pid --log=guest --log-dir=/tmp/cons ||
        dom0_fail "xenconsoled did not start"
    mark stage xenstore-up
    cat >/tmp/domu.cfg <<EOF
name = "labu"
type = "pv"
kernel = "/lab/vmlinux"
ramdisk = "/lab/domu.cpio"
extra = "console=hvc0 rdinit=/init $DOMU_CMDLINE"
memory = $DOMU_MEM
vcpus = 1
on_poweroff = "destroy"
on_crash = "destroy"
EOF
    xl create -q -p /tmp/domu.cfg || dom0_fail "xl create failed"
    u=$(xl domid labu) || dom0_fail "xl domid failed"
    mark stage domu-created "$u"
    [ -x /lab/dom0/prog ] || dom0_fail "no dom0 program"
    run dom0 '0| ' 0 "$u" "$ARGS0" &
    xl unpause "$u" || dom0_fail "xl unpause failed"
    mark stage domu-running
    log=/tmp/cons/guest-labu.log
    deadline=$(( $(uptime_s) + TIMEOUT ))
    gone=0
    n=0
    while :; do
        udone=0
        grep -q '^@xenmq-lab exit-domu' $log 2>/dev/null && udone=1
        if [ $udone = 0 ] && [ $((n % 10)) = 9 ]; then
            xenstore-exists /local/domain/$u || gone=1
        fi
        n=$((n + 1))
        [ -f /tmp/dom0.rc ] && { [ $udone = 1 ] || [ $gone = 1 ]; } && break
        if [ "$(uptime_s)" -ge "$deadline" ]; then
            mark timeout
            break
        fi
        sleep 0.2
    done
    mark stage programs-done
    sleep 0.5
    if [ -f /tmp/dom0.rc ]; then mark exit-dom0 "$(cat /tmp/dom0.rc)"; else mark exit-dom0 timeout; fi
    tr -d '\r' <$log 2>/dev/null | grep '^U| ' >/tmp/domu.out
    cat /tmp/domu.out
    rc=$(tr -d '\r' <$log 2>/dev/null | sed -n 's/^@xenmq-lab exit-domu //p' | tail -n 1)
    if [ -n "$rc" ]; then
        mark exit-domu "$rc"
    elif [ $gone = 1 ]; then
        mark exit-domu crashed
    else
        mark exit-domu timeout
    fi
    if [ -z "$rc" ]; then
        tr -d '\r' <$log 2>/dev/null | grep -v '^U| ' | tail -n 100 | prefix 'Ucons| '
    fi
    mark end
    xl destroy "$u" >/dev/null 2>&1
    poweroff -f
}

mounts
mkdir -p /tmp/cons
[ -f /lab/settings ] && . /lab/settings
if grep -q control_d /proc/xen/capabilities; then dom0_main; else domu_main; fi
