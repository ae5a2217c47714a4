#!/bin/sh
# Build a kernel WITH CONFIG_FUNCTION_GRAPH_RETVAL (+ RETADDR where it exists, 6.13+) for the
# retval captures.  SERIES=6.12 (default; bookworm-security) or SERIES=7.3 (trixie-backports
# source package; needs deb http://deb.debian.org/debian trixie-backports main).
#
# Debian builds its 6.12 (and 6.17) kernels without CONFIG_FUNCTION_GRAPH_RETVAL, so no
# packaged kernel here has options/funcgraph-retval. This builds Debian's own 6.12 source
# (apt package linux-source-6.12) with virtme-ng's minimal config (9p/virtio built in, so it
# boots with tests/live/vm.py without modules) plus the fragment below.
# ~40 min on 2 busy CPUs. Result: $OUT/vmlinuz-<release>-ftkretval (+ its .config), e.g.
# vmlinuz-6.12.117-ftkretval, vmlinuz-7.3.4-ftkretval.
#
# Then:  .venv/bin/python tests/data/capture.py --kernel $OUT/vmlinuz-6.12.117-ftkretval \
#            --kernel-note "..." default_trace proc_abstime tail_overrun retval retval_hex retval_events
set -eu
OUT=${OUT:-/var/tmp/ftk-kbuild}
REPO=$(cd "$(dirname "$0")/../.." && pwd)
SERIES=${SERIES:-6.12}
case "$SERIES" in
  6.12) PKG="linux-source-6.12=${VERSION:-6.12.117-1~deb12u1}";;
  *)    PKG="linux-source-$SERIES${VERSION:+=$VERSION}";;
esac
apt-get install -y "$PKG" flex bison bc libelf-dev libssl-dev
mkdir -p "$OUT"
cd "$OUT"
[ -d "linux-source-$SERIES" ] || tar xf "/usr/src/linux-source-$SERIES.tar.xz"
cd "linux-source-$SERIES"
cat > "$OUT/ftk.config" <<'EOF'
CONFIG_FTRACE=y
CONFIG_FUNCTION_TRACER=y
CONFIG_FUNCTION_GRAPH_TRACER=y
CONFIG_FUNCTION_GRAPH_RETVAL=y
CONFIG_FUNCTION_GRAPH_RETADDR=y
CONFIG_DYNAMIC_FTRACE=y
CONFIG_FTRACE_SYSCALLS=y
CONFIG_TRACING=y
CONFIG_KPROBES=y
CONFIG_NET=y
CONFIG_INET=y
CONFIG_DUMMY=y
CONFIG_NET_NS=y
CONFIG_UNIX=y
CONFIG_PACKET=y
CONFIG_IPV6=y
CONFIG_NETDEVICES=y
CONFIG_NET_CORE=y
CONFIG_DEBUG_INFO_NONE=y
EOF
PATH="$REPO/.venv/bin:$PATH" vng --kconfig --config "$OUT/ftk.config"
./scripts/config --disable DEBUG_INFO --enable DEBUG_INFO_NONE \
    --disable DEBUG_INFO_DWARF_TOOLCHAIN_DEFAULT --disable DEBUG_INFO_BTF \
    --set-str LOCALVERSION "-ftkretval" --disable LOCALVERSION_AUTO
make olddefconfig
grep -q '^CONFIG_FUNCTION_GRAPH_RETVAL=y' .config
nice -n 19 make -j"$(nproc)" bzImage
REL=$(make -s kernelrelease)
cp arch/x86/boot/bzImage "$OUT/vmlinuz-$REL"
cp .config "$OUT/config-$REL"
echo "$OUT/vmlinuz-$REL"
