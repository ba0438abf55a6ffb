#!/usr/bin/env bash
# Installs the system tools tpesim needs (Icarus Verilog, a C++ toolchain for Verilator builds, ccache) when
# they are missing. Needs root for apt-get; otherwise prints what to install and fails.
set -euo pipefail
need=()
command -v iverilog >/dev/null || need+=(iverilog)
command -v g++ >/dev/null || need+=(g++)
command -v make >/dev/null || need+=(make)
command -v perl >/dev/null || need+=(perl)
command -v ccache >/dev/null || need+=(ccache)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing with apt-get: ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
else
  echo "error: missing system tools: ${need[*]}. Install them, e.g.: sudo apt-get install ${need[*]}" >&2
  # ccache is only an accelerator; everything else is required.
  for t in "${need[@]}"; do [ "$t" = ccache ] || exit 1; done
fi
