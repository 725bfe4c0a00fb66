#!/bin/sh
# Usage: check_baseline_instructions.sh BINARY
# A program built for plain x86-64 with the kernel variants linked in (kernel_dispatch.hpp) may
# run AVX, AVX2, AVX-512, AMX or BMI instructions only inside the variants' namespaces, which the
# dispatch enters only on CPUs that have them. Lists every other function that holds one (a shared
# inline function whose variant copy the linker kept, say) and fails if there is any. (tzcnt is
# not among them: compilers emit it for plain x86-64 as well, where older CPUs run it as bsf.)
set -eu
binary=$1
found=$(objdump -d --no-show-raw-insn -C "$binary" | awk '
  /^[0-9a-f]+ <.*>:$/ { fn = $0; next }
  /\tv[a-z0-9]+ |%[yz]mm[0-9]|%k[0-7]|\t(shlx|shrx|sarx|rorx|andn|bzhi|pdep|pext|lzcnt|blsr|blsi|blsmsk|movbe|ldtilecfg|tileloadd|tileloaddt1|tilestored|tilezero|tilerelease|tdpb[su][su]d|tdpbf16ps) / {
    if (fn !~ /::x86_64_v3::|::x86_64_v4_vnni::|::x86_64_v4_amx::|::x86_64_v4_bf16::/) print fn
  }' | sort -u)
if [ -n "$found" ]; then
  echo "instructions beyond the x86-64 baseline outside the kernel variants of $binary:"
  echo "$found"
  exit 1
fi
echo "$binary: instructions beyond the x86-64 baseline only in the kernel variants"
