#!/usr/bin/env bash
# vm/run.sh — `make vm-test`: hyper-sched in QEMU guests on stock Debian
# cloud kernels, where cgroup v2 has every controller (DESIGN.md §9).
#
#   1. busybox guests (initramfs, cgroup2 only, no systemd), hyper-sched
#      started by hand as root by vm/guestcheck:
#        a. kernel 6.12, -smp 3, isolcpus=1: worker-1 in a valid isolated
#           partition on the isolcpus CPU, SCHED_FIFO;
#        b. kernel 6.12, -smp 3: worker-1 and worker-2 in valid isolated
#           (remote) partitions, SCHED_FIFO;
#        c. kernel 6.1 (Debian 12's default), -smp 2: the partition is
#           tried, the kernel marks it invalid, and that is reported.
#   2. a systemd guest (debootstrap minbase tree as an initramfs, 6.12,
#      -smp 3, workers 1-2), vm/guest/systemd-test.sh: systemd/install.sh
#      (hyper-schedctl included), `systemctl start|restart|stop`, every lane
#      RUNNING when systemctl returns, the partition drop-in of docs/ops.md
#      across restart, a SIGKILLed supervisor and stop/start, a SIGKILLed
#      lane and `hyper-schedctl restart worker-2`.
#
# The host parses the VMTEST lines of each serial console and exits non-zero
# when a guest failed or timed out. Kernels, guest trees and binaries are
# cached under vm/.cache. Environment:
#   VM_ONLY=busybox|systemd   run one part
#   VM_KERNEL=pkg             kernel package for 1a, 1b, 2 (default: newest 6.12 cloud)
#   VM_OLD_KERNEL=pkg|none    kernel package for 1c (default: newest 6.1 cloud)
#   VM_TIMEOUT=seconds        per guest (default 300; the slowest, systemd, takes ~60 s)
#   VM_REPEAT=n               boot each guest n times (hunting a rare failure)
#   VM_KEEP_LOGS=1            keep the console logs in vm/.cache/logs (always kept on failure)
#   VM_APT_WAIT=seconds       how long to wait for another apt/dpkg's lock (default 600)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
cache=$repo/vm/.cache
mkdir -p "$cache/logs"
export PATH=/usr/local/go/bin:$PATH
start_all=$(date +%s)

log() { printf '%s vm: %s\n' "$(date +%T)" "$*" >&2; }
die() { log "$*"; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (apt-get, debootstrap)"

# --- apt ----------------------------------------------------------------------
# apt_get ARGS...: apt-get, waiting while another apt or dpkg on the machine
# (unattended-upgrades, a second CI job) holds its lock: apt-get fails at
# once with "Could not get lock", and DPkg::Lock::Timeout covers only the
# dpkg lock, not the lists lock of `apt-get update`. The wait is bounded by
# VM_APT_WAIT seconds (default 600) and says whom it waits for. With
# APT_QUIET set, apt-get's other errors are not shown.
apt_get() {
	local limit=${VM_APT_WAIT:-600} t0 err rc held said=-1
	t0=$(date +%s)
	err=$(mktemp)
	while :; do
		rc=0
		DEBIAN_FRONTEND=noninteractive apt-get "$@" 2>"$err" || rc=$?
		held=$(sed -n 's/^E: Could not get lock //p' "$err" | head -n 1)
		if [ "$rc" = 0 ] || [ -z "$held" ]; then
			[ -n "${APT_QUIET:-}" ] || cat "$err" >&2
			rm -f "$err"
			return "$rc"
		fi
		local waited=$(($(date +%s) - t0))
		if [ "$waited" -ge "$limit" ]; then
			log "apt-get $1: gave up after ${waited}s (VM_APT_WAIT=$limit) waiting for the lock $held"
			cat "$err" >&2
			rm -f "$err"
			return "$rc"
		fi
		if [ $((waited / 30)) != "$said" ]; then # every 30 s
			said=$((waited / 30))
			log "apt-get $1: waiting for the lock $held (${waited}s of at most ${limit}s)"
		fi
		sleep 3
	done
}

# --- tools ------------------------------------------------------------------
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
# busybox-static provides /bin/busybox; the dynamic busybox package would not
# run in a guest without libc.
{ [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1; } || need+=(busybox-static)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v cpio >/dev/null || need+=(cpio)
if [ ${#need[@]} -gt 0 ]; then
	log "installing ${need[*]}"
	apt_get update -qq || die "apt-get update failed"
	apt_get install -y -qq --no-install-recommends "${need[@]}" >/dev/null || die "apt-get install ${need[*]} failed"
fi

# --- kernels ----------------------------------------------------------------
newest() { apt-cache search --names-only "$1" | awk '{print $1}' | sort -V | tail -n 1; }
kernel() { # kernel PKG: prints the path of its vmlinuz, downloading once
	local pkg=$1 dir=$cache/kernels/$1
	if [ ! -f "$dir/vmlinuz" ]; then
		log "fetching $pkg"
		local tmp
		tmp=$(mktemp -d)
		(cd "$tmp" && APT_QUIET=1 apt_get download -q "$pkg" >/dev/null) || { apt_get update -qq && (cd "$tmp" && apt_get download -q "$pkg" >/dev/null); }
		dpkg -x "$tmp"/*.deb "$tmp/x"
		mkdir -p "$dir"
		cp "$tmp"/x/boot/vmlinuz-* "$dir/vmlinuz"
		rm -rf "$tmp"
	fi
	echo "$dir/vmlinuz"
}
new_pkg=${VM_KERNEL:-$(newest '^linux-image-6\.12\.[0-9.]+\+deb12-cloud-amd64$')}
old_pkg=${VM_OLD_KERNEL:-$(newest '^linux-image-6\.1\.0-[0-9]+-cloud-amd64$')}
[ -n "$new_pkg" ] || die "no linux-image-6.12*-cloud-amd64 in apt; set VM_KERNEL"

# --- binaries -----------------------------------------------------------------
log "building static hyper-sched, hyper-schedctl and guestcheck"
CGO_ENABLED=0 go build -trimpath -o "$cache/bin/hyper-sched" ./cmd/hyper-sched
CGO_ENABLED=0 go build -trimpath -o "$cache/bin/hyper-schedctl" ./cmd/hyper-schedctl
CGO_ENABLED=0 go build -trimpath -o "$cache/bin/guestcheck" ./vm/guestcheck

# overlay DIR: a cpio of what changes each run; the kernel unpacks
# concatenated archives in order, so it lands on top of a cached base.
overlay() {
	(cd "$1" && find . | cpio -o -H newc --quiet | gzip -1)
}

# --- guests -------------------------------------------------------------------
failed=()
# boot NAME KERNEL INITRD SMP APPEND: runs one guest VM_REPEAT times.
boot() {
	local n=${VM_REPEAT:-1} i
	if [ "$n" = 1 ]; then
		boot1 "$@"
		return
	fi
	for i in $(seq 1 "$n"); do
		boot1 "$1#$i" "${@:2}"
	done
}

# boot1 NAME KERNEL INITRD SMP APPEND: runs one guest, parses its console.
boot1() {
	local name=$1 kern=$2 initrd=$3 smp=$4 append=$5 out=$cache/logs/$1.log t0 rc=0
	log "guest $name: booting (-smp $smp, $append)"
	t0=$(date +%s)
	# One TCG thread for all vCPUs: multi-threaded TCG races the kernel's
	# live code patching (int3 text_poke) and panics a boot now and then.
	timeout "${VM_TIMEOUT:-300}" qemu-system-x86_64 -machine q35 -accel tcg,thread=single -cpu max -smp "$smp" -m 1536 \
		-nographic -no-reboot -nic none -kernel "$kern" -initrd "$initrd" \
		-append "console=ttyS0 panic=-1 loglevel=4 $append" </dev/null 2>&1 | tr -d '\r' >"$out" || rc=$?
	local secs=$(($(date +%s) - t0))
	# Lines as the guest printed them, without a journal+console prefix.
	sed -n 's/^.*\(VMTEST [A-Z]\)/\1/p' "$out" >"$out.vmtest"
	grep -av '^VMTEST LOG' "$out.vmtest" | sed "s/^/  [$name] /" >&2 || true
	if [ "$rc" = 124 ]; then
		log "guest $name: TIMEOUT after ${secs}s (console: $out)"
		failed+=("$name")
	elif grep -a '^VMTEST RESULT PASS' "$out.vmtest" >/dev/null && ! grep -a '^VMTEST FAIL' "$out.vmtest" >/dev/null; then
		log "guest $name: PASS in ${secs}s"
	else
		log "guest $name: FAIL in ${secs}s (console: $out)"
		failed+=("$name")
	fi
}

busybox_guests() {
	local base=$cache/busybox-base.cpio.gz ov
	if [ ! -f "$base" ]; then
		local root
		root=$(mktemp -d)
		mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,run,etc,var/lib,var/cache}
		cp /bin/busybox "$root/bin/"
		for a in $(/bin/busybox --list); do
			[ "$a" = busybox ] || ln -s busybox "$root/bin/$a"
		done
		(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$base"
		rm -rf "$root"
	fi
	ov=$(mktemp -d)
	install -D -m 0755 vm/guest/busybox-init "$ov/init"
	install -D -m 0755 "$cache/bin/hyper-sched" "$ov/usr/local/bin/hyper-sched"
	install -D -m 0755 "$cache/bin/guestcheck" "$ov/usr/local/bin/guestcheck"
	install -D -m 0644 testdata/fib.wasm "$ov/testdata/fib.wasm"
	cat "$base" <(overlay "$ov") >"$cache/busybox.cpio.gz"
	rm -rf "$ov"
	local k
	k=$(kernel "$new_pkg")
	boot busybox-isolcpus "$k" "$cache/busybox.cpio.gz" 3 \
		"isolcpus=1 hs_workers=1 hs_hk=0,2 hs_partition=isolated hs_policy=fifo"
	boot busybox-partitions "$k" "$cache/busybox.cpio.gz" 3 \
		"hs_workers=1-2 hs_hk=0 hs_partition=isolated hs_policy=fifo"
	if [ "$old_pkg" != none ] && [ -n "$old_pkg" ]; then
		boot busybox-6.1 "$(kernel "$old_pkg")" "$cache/busybox.cpio.gz" 2 \
			"hs_workers=1 hs_hk=0 hs_partition=invalid hs_policy=other"
	fi
}

systemd_guest() {
	local base=$cache/systemd-base.cpio.gz ov
	if [ ! -f "$base" ]; then
		local root=$cache/systemd-root t0
		t0=$(date +%s)
		log "building the systemd guest tree (debootstrap, once)"
		rm -rf "$root"
		debootstrap --variant=minbase --include=systemd,systemd-sysv,curl bookworm "$root" \
			http://deb.debian.org/debian >"$cache/logs/debootstrap.log" 2>&1 || die "debootstrap failed: $cache/logs/debootstrap.log"
		echo hyper-sched-vm >"$root/etc/hostname"
		: >"$root/etc/fstab"
		# Nothing to log in on, no clock or network to wait for: the test
		# unit is all this guest runs.
		for u in serial-getty@ttyS0.service getty@tty1.service console-getty.service systemd-logind.service \
			apt-daily.timer apt-daily-upgrade.timer systemd-timesyncd.service systemd-networkd.service \
			systemd-resolved.service e2scrub_reap.service; do
			ln -sf /dev/null "$root/etc/systemd/system/$u"
		done
		cat >"$root/etc/systemd/system/hs-vmtest.service" <<-'EOF'
			[Unit]
			Description=hyper-sched VM test
			After=basic.target
			[Service]
			Type=oneshot
			ExecStart=/opt/hs/systemd-test.sh
			StandardOutput=journal+console
			StandardError=journal+console
			[Install]
			WantedBy=multi-user.target
		EOF
		mkdir -p "$root/etc/systemd/system/multi-user.target.wants"
		ln -sf ../hs-vmtest.service "$root/etc/systemd/system/multi-user.target.wants/hs-vmtest.service"
		rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
		(cd "$root" && ln -sf /sbin/init init && find . | cpio -o -H newc --quiet | gzip -1) >"$base"
		rm -rf "$root"
		log "systemd guest tree built in $(($(date +%s) - t0))s ($(du -h "$base" | cut -f1))"
	fi
	ov=$(mktemp -d)
	install -D -m 0755 vm/guest/systemd-test.sh "$ov/opt/hs/systemd-test.sh"
	install -D -m 0755 systemd/install.sh "$ov/opt/hs/install.sh"
	install -D -m 0644 systemd/hyper-sched.service "$ov/opt/hs/hyper-sched.service"
	# The partition drop-in exactly as docs/ops.md gives it, with the
	# guest's worker CPUs: the test checks what an operator would install.
	awk '/^# \/etc\/systemd\/system\/hyper-sched\.service\.d\/partitions\.conf$/ {on = 1; next}
		on && /^```/ {exit} on' docs/ops.md | sed 's/echo 2-3 >/echo 1-2 >/' >"$ov/opt/hs/partitions.conf"
	grep -q "^ExecStartPre=+.*echo 1-2 > /sys/fs/cgroup/system.slice/cpuset.cpus.exclusive" "$ov/opt/hs/partitions.conf" ||
		die "docs/ops.md: no partitions.conf drop-in (ExecStartPre=+... echo 2-3 > .../system.slice/cpuset.cpus.exclusive) found to test"
	install -D -m 0755 "$cache/bin/hyper-sched" "$ov/opt/hs/hyper-sched"
	install -D -m 0755 "$cache/bin/hyper-schedctl" "$ov/opt/hs/hyper-schedctl"
	install -D -m 0755 "$cache/bin/guestcheck" "$ov/opt/hs/guestcheck"
	install -D -m 0644 testdata/fib.wasm "$ov/opt/hs/fib.wasm"
	cat "$base" <(overlay "$ov") >"$cache/systemd.cpio.gz"
	rm -rf "$ov"
	boot systemd "$(kernel "$new_pkg")" "$cache/systemd.cpio.gz" 3 \
		"rdinit=/sbin/init systemd.show_status=0 systemd.log_level=warning"
}

case ${VM_ONLY:-all} in
busybox) busybox_guests ;;
systemd) systemd_guest ;;
all) busybox_guests && systemd_guest ;;
*) die "VM_ONLY=$VM_ONLY: want busybox or systemd" ;;
esac

log "total $(($(date +%s) - start_all))s"
if [ ${#failed[@]} -gt 0 ]; then
	# Repeated last, where a truncated CI log still shows it.
	for name in "${failed[@]}"; do
		log "guest $name: its failed checks, then the last lines of its console:"
		grep -a '^VMTEST FAIL' "$cache/logs/$name.log.vmtest" | sed "s/^/  [$name] /" >&2 || true
		sed 's/\x1b\[[0-9;?]*[a-zA-Z]//g' "$cache/logs/$name.log" | grep -av 'VMTEST' | tail -n 15 | sed "s/^/  [$name console] /" >&2 || true
	done
	log "FAILED: ${failed[*]}"
	exit 1
fi
[ -n "${VM_KEEP_LOGS:-}" ] || rm -f "$cache"/logs/busybox-* "$cache"/logs/systemd*.log*
log "all guests passed"
