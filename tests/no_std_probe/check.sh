#!/usr/bin/env bash
# Firmware-grade proofs for dropmax (contract section 5): the crate links without `std`, without
# `alloc`, and no panic is reachable from any public kernel or function, on the host (x86-64)
# and on two firmware targets (thumbv7em-none-eabihf: Cortex-M4F/M7; riscv32imac-unknown-none-elf),
# at opt-levels 3, 2, "s" and "z". Needs stable Rust with those two targets (rustup target add),
# `cc` and binutils (`ar`, `readelf`, `c++filt`; `objdump`/`addr2line` for the diagnosis of a
# failure). Cross targets are linked with the toolchain's own `rust-lld`; binutils' `readelf`
# and `addr2line` read their ELF objects like the host's.
#
# The probe (`src/lib.rs`) is a `#![no_std]` staticlib with its own `#[panic_handler]` and no
# global allocator. Its `extern "C"` functions call every public kernel and function of dropmax
# on inputs taken from their arguments (nothing to constant-fold), in every mode, mask kind and
# kernel variant. Each configuration (target, target-cpu, opt-level; `wide` compiles different
# SIMD code for each target-cpu) is built with fat LTO, one codegen unit, panic = "abort", then:
#
#   no std      rustc itself refuses to build the probe if any crate in the graph links `std`:
#               std brings its own `panic_impl` lang item, which collides with the probe's
#               `#[panic_handler]` (error[E0152]: found duplicate lang item `panic_impl`).
#   no alloc    rustc refuses to build a staticlib whose graph links `alloc` without a
#               `#[global_allocator]` ("no global memory allocator found but one is required").
#               Belt and braces (a `#[global_allocator]` in some dependency would silence that
#               error): no allocator symbol (__rust_alloc, __rg_*, __rdl_*, ...) and no `std::` or
#               `alloc::` symbol may appear anywhere in the archive; since LTO can inline all of
#               those away, the object's DWARF line tables must not name any source file of
#               library/alloc or library/std either; and the probe's object may only import
#               memcpy/memmove/memset/memcmp/bcmp (and ARM's __aeabi_mem* forms) and what the
#               archive itself defines. (An allocation also leaves a panic path: capacity
#               overflow, handle_alloc_error.)
#   no panic    the panic handler calls `dropmax_probe_panic_reached`, declared and never defined.
#               After fat LTO only code reachable from the exports survives, so the object
#               imports that symbol iff some panic path (bounds check, unwrap, division by zero,
#               overflow, `panic!`) survived optimisation in some public kernel. Checked twice:
#               the object's undefined symbols, and a link: on the host into a C program
#               (c/main.c), which is then run once as a smoke test; on a cross target with
#               rust-lld into a static image rooted at the exports (--gc-sections). Either link
#               fails with "undefined reference"/"undefined symbol". On failure, every call from
#               dropmax into the panic machinery is listed with its source line.
#
# The firmware configuration (the probe's `firmware` and `firmware-train` features: only the
# `Scalar` kernel, inference only or with training) is built for both firmware targets at each
# opt-level and checked the same way, and also:
#
#   no wide     nothing of the wide tables is in the object: no `wide::` symbol, and no line-table
#               entry from the `wide` crate's sources or from src/isa/portable.rs or
#               src/kernel/vector.rs (the same check is shown to find them in the all-kernels
#               probe of that target and opt-level).
#   size        the `.text` of each firmware target's linked image (firmware configurations and
#               the all-kernels probe, every opt-level) may not exceed its budget in
#               size-budget.txt.
#
# Every run also proves the detectors still bite on each target: the probe's own `canary-std`,
# `canary-alloc` and `canary-panic` features must make the build, resp. the link, fail with the
# expected error (`canary-panic` with the firmware configuration at the lowest opt-level checked,
# the one most likely to hide a panic).
#
# Builds go to target/ next to this script: one cargo target directory per (target, target-cpu,
# opt-level), shared by that combination's probe, firmware and canary builds (only the probe
# crate differs between them); each configuration's archive and logs are kept in target/NAME.
# DROPMAX_PROBE_JOBS (default: the number of CPUs) builds that many combinations at once.
# Subsets, for a quicker run: DROPMAX_PROBE_CPUS (host target-cpus checked at opt-level 3,
# default "baseline x86-64-v3 native"), DROPMAX_PROBE_OPT_LEVELS (default "3 2 s z"),
# DROPMAX_PROBE_TARGETS (default "host thumbv7em-none-eabihf riscv32imac-unknown-none-elf").
set -euo pipefail
export LC_ALL=C

here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
root="$(cd ../.. && pwd)"
cc="${CC:-cc}"

# Nothing from the caller's environment may weaken the build: the profile in Cargo.toml rules
# (only its opt-level is varied, below).
unset RUSTFLAGS CARGO_ENCODED_RUSTFLAGS CARGO_BUILD_RUSTFLAGS CARGO_BUILD_TARGET CARGO_INCREMENTAL
for v in $(compgen -e | grep -E '^CARGO_(PROFILE_|TARGET_)' || true); do unset "$v"; done

# The probe builds against the dependency versions the main crate's lock file pins.
if [ -f "$root/Cargo.lock" ]; then
    cp "$root/Cargo.lock" Cargo.lock
fi

host="$(rustc -vV | sed -n 's/^host: //p')"
lld="$(rustc --print sysroot)/lib/rustlib/$host/bin/rust-lld"

failures=0
fail() {
    printf 'FAIL: %s\n' "$*"
    failures=$((failures + 1))
}
pass() { printf 'ok:   %s\n' "$*"; }

lib_name=libdropmax_no_std_probe.a
all_exports="dropmax_probe_softmax dropmax_probe_dropout dropmax_probe_lse dropmax_probe_philox
         dropmax_probe_philox_x4 dropmax_probe_philox_x8 dropmax_probe_philox_x16 dropmax_probe_rng
         dropmax_probe_error_display dropmax_probe_batch"
mem_imports="memcpy memmove memset memcmp bcmp __aeabi_memcpy __aeabi_memcpy4 __aeabi_memcpy8
         __aeabi_memmove __aeabi_memmove4 __aeabi_memmove8 __aeabi_memset __aeabi_memset4
         __aeabi_memset8 __aeabi_memclr __aeabi_memclr4 __aeabi_memclr8"
panic_symbol=dropmax_probe_panic_reached

# exports FEATURES: the entry points the probe defines with these features.
exports() {
    case "$1" in
        *firmware-train*) echo dropmax_probe_fw_eval dropmax_probe_fw_train ;;
        *firmware*) echo dropmax_probe_fw_eval ;;
        *) echo $all_exports ;;
    esac
}

# ---------------------------------------------------------------------------------------------
# The configurations. A line: NAME TARGET CPU OPT FEATURES ("-" for none, "host" for the host).
targets="${DROPMAX_PROBE_TARGETS:-host thumbv7em-none-eabihf riscv32imac-unknown-none-elf}"
opts="${DROPMAX_PROBE_OPT_LEVELS:-3 2 s z}"
cpus="${DROPMAX_PROBE_CPUS:-baseline x86-64-v3 native}"
if [ "${host%%-*}" != x86_64 ]; then
    cpus="$(sed 's/x86-64-v3//' <<<"$cpus")"
fi
lowest_opt="$(tr ' ' '\n' <<<"$opts" | grep -E '^[0-9sz]$' | tail -1)"
first_opt="$(tr ' ' '\n' <<<"$opts" | grep -E '^[0-9sz]$' | head -1)"
configs=()
for t in $targets; do
    short="${t%%-*}"
    [ "$t" = host ] && short=host
    for o in $opts; do
        if [ "$t" = host ]; then
            for cpu in $cpus; do
                # Every target-cpu at opt-level 3 (the size-of-code levels with the baseline).
                if [ "$o" = 3 ] || [ "$cpu" = baseline ]; then
                    configs+=("$cpu-O$o host $cpu $o -")
                fi
            done
        else
            # The all-kernels probe, then the firmware configuration (sharing its dependencies).
            configs+=("$short-O$o $t baseline $o -")
            configs+=("$short-O$o-fw-eval $t baseline $o firmware")
            configs+=("$short-O$o-fw-full $t baseline $o firmware-train")
        fi
    done
done

# cargo_dir TARGET CPU OPT: the cargo target directory shared by that combination.
cargo_dir() { echo "$here/target/cargo/$1-$2-O$3"; }

# build NAME TARGET CPU OPT FEATURES: builds into the shared cargo directory, then keeps the
# archive and the log in target/NAME. Returns cargo's status.
build() {
    local name="$1" t="$2" cpu="$3" opt="$4" features="$5" dir="$here/target/$1" cdir
    cdir="$(cargo_dir "$t" "$cpu" "$opt")"
    [ "$features" = - ] && features=""
    rm -rf "$dir" && mkdir -p "$dir" "$cdir"
    local flags="" target_args=() out="$cdir/release"
    [ "$cpu" != baseline ] && flags="-C target-cpu=$cpu"
    if [ "$t" != host ]; then
        target_args=(--target "$t")
        out="$cdir/$t/release"
    fi
    local rc=0
    CARGO_TARGET_DIR="$cdir" RUSTFLAGS="$flags" CARGO_PROFILE_RELEASE_OPT_LEVEL="$opt" \
        cargo build --release --quiet "${target_args[@]}" ${features:+--features "$features"} \
        >"$dir/build.log" 2>&1 || rc=$?
    if [ "$rc" = 0 ]; then
        cp "$out/$lib_name" "$dir/$lib_name"
    fi
    echo "$rc" >"$dir/build.rc"
    return "$rc"
}

# The canaries of a target, in a cargo directory its configurations share: on the host the
# full probe at the first opt-level listed (3 by default), elsewhere the firmware one at the last
# (the smallest, "z" by default: where a panic path is most likely to survive).
canary_configs() {
    local t="$1" short="${1%%-*}" o="$lowest_opt" fw=",firmware"
    if [ "$t" = host ]; then
        short=host o="$first_opt" fw=""
    fi
    echo "$short-canary-std $t baseline $o canary-std$fw"
    echo "$short-canary-alloc $t baseline $o canary-alloc$fw"
    echo "$short-canary-panic $t baseline $o canary-panic$fw"
}

# ---------------------------------------------------------------------------------------------
# The symbol table of an ELF object or archive, as "BIND NDX NAME" lines (readelf, not nm: nm
# trips over the LLVM bitcode in compiler_builtins' objects).
symbols() { readelf -sW "$1" 2>/dev/null | awk 'NF >= 8 && $1 ~ /^[0-9]+:$/ {print $5, $7, $8}'; }

# cross_link DIR TARGET FEATURES [EXTRA...]: links the archive into a static image rooted at the
# exports (rust-lld, --gc-sections), DIR/probe.elf; its messages in DIR/link.log.
cross_link() {
    local dir="$1" t="$2" features="$3" roots=()
    shift 3
    for e in $(exports "$features"); do roots+=(-u "$e"); done
    "$lld" -flavor gnu --gc-sections --entry=0 "${roots[@]}" "$@" -o "$dir/probe.elf" \
        "$dir/$lib_name" >"$dir/link.log" 2>&1
}

# diagnose_panics DIR TARGET FEATURES: links with a stub panic symbol and lists, per source line
# of dropmax (or the probe) where it happens, each call into a `core` function that reaches the
# panic handler (generic `core` functions such as `Option::map` may hold dropmax code inlined;
# the line is that code's), with the count of such calls.
diagnose_panics() {
    local dir="$1" t="$2" features="$3" exe="$1/probe-diagnose" objdump=objdump
    if [ "$t" = host ]; then
        printf 'void %s(void) { __builtin_trap(); }\n' "$panic_symbol" >"$dir/stub.c"
        "$cc" -O1 -no-pie -o "$exe" c/main.c "$dir/stub.c" "$dir/$lib_name" -lm 2>/dev/null || {
            echo "      (diagnostic link failed)"
            return
        }
    else
        cross_link "$dir" "$t" "$features" "--defsym=$panic_symbol=0" && mv "$dir/probe.elf" "$exe" || {
            echo "      (diagnostic link failed)"
            return
        }
        objdump="$(dirname "$lld")/llvm-objdump"
    fi
    if ! command -v "$objdump" >/dev/null || ! command -v addr2line >/dev/null; then
        echo "      (install binutils' objdump and addr2line, or rustup's llvm-tools for a cross"
        echo "      target, for a diagnosis)"
        return
    fi
    # The call graph from the disassembly; "bad" = the functions that reach the panic handler.
    "$objdump" -d --no-show-raw-insn -C "$exe" | awk -v seed="$panic_symbol" '
        /^[0-9a-f]+ <.*>:$/ {
            fn = substr($0, index($0, "<") + 1); sub(/>:$/, "", fn)
            if (fn == seed || fn ~ /rust_begin_unwind$/) bad[fn] = 1
            next
        }
        /^ *[0-9a-f]+:.*<[^>]*>/ {
            # From the first "<" to the last ">": demangled names hold "<impl [T]>" and the like.
            t = substr($0, index($0, "<") + 1); sub(/>[^>]*$/, "", t); sub(/\+0x[0-9a-f]+$/, "", t)
            a = $1; sub(/:$/, "", a)
            if (t != fn) { n++; from[n] = fn; to[n] = t; addr[n] = a }
        }
        END {
            do { grown = 0
                 for (i = 1; i <= n; i++) if ((to[i] in bad) && !(from[i] in bad)) { bad[from[i]] = 1; grown = 1 }
            } while (grown)
            for (i = 1; i <= n; i++)
                if ((to[i] in bad) && to[i] ~ /^(core::|__rustc::|<core::)/) print addr[i], to[i]
        }' | sort -u | while read -r addr target; do
        # The innermost source line outside the Rust library, and the core function called.
        addr2line -f -i -C -e "$exe" "0x$addr" | paste - - |
            awk -v t="${target%%::h[0-9a-f]*}" '$NF !~ /^\/rustc\// {print $NF " -> " t; exit}'
    done | sed "s|$root/||; s/_\\\$LT\\\$/</g; s/\\\$LT\\\$/</g; s/\\\$GT\\\$/>/g; s/\\\$u20\\\$/ /g; s/\\\$u5b\\\$/[/g; s/\\\$u5d\\\$/]/g; s/\\\$u3b\\\$/;/g" |
        sort | uniq -c | sed 's/^ */      /; s/$/ (calls)/'
    if command -v "$objdump" >/dev/null && [ "$t" != host ]; then
        echo "      (full inlined call chains: addr2line -f -i -C -e $exe ADDRESS)"
    fi
}

# wide_code OBJECT: the wide tables' traces in an object, one per line (empty: none).
wide_code() {
    {
        readelf -sW --demangle "$1" 2>/dev/null | awk '$NF ~ /wide::/ {print "symbol " $NF}' | head -3
        readelf --debug-dump=line "$1" 2>/dev/null |
            grep -oE '(wide-[0-9][^ /]*|(isa/)?portable\.rs|(kernel/)?vector\.rs)$' | sort -u |
            sed 's/^/source /'
    } || true
}

# text_size ELF: the size of its .text section in bytes.
text_size() {
    local hex
    hex="$(readelf -SW "$1" | awk '{for (i = 1; i < NF; i++) if ($i == ".text") {print $(i + 4); exit}}')"
    echo $((16#${hex:-0}))
}

# check_config NAME TARGET CPU OPT FEATURES
check_config() {
    local name="$1" t="$2" cpu="$3" opt="$4" features="$5" dir="$here/target/$1"
    [ "$features" = - ] && features=""
    echo
    echo "=== $name: $t${cpu:+, target-cpu $cpu}${features:+, features $features}: fat LTO, opt-level $opt, codegen-units 1, panic=abort"
    if [ "$(cat "$dir/build.rc" 2>/dev/null)" != 0 ]; then
        sed 's/^/      /' "$dir/build.log"
        if grep -q 'duplicate lang item' "$dir/build.log"; then
            fail "$name: std is linked (its panic_impl collides with the probe's #[panic_handler])"
        elif grep -q 'no global memory allocator' "$dir/build.log"; then
            fail "$name: alloc is linked (the graph needs a global allocator)"
        else
            fail "$name: the probe does not build"
        fi
        return
    fi
    pass "builds as a #![no_std] staticlib with its own #[panic_handler] and no global allocator: no std, no alloc in the graph"

    local lib="$dir/$lib_name" objs="$dir/objects"
    rm -rf "$objs" && mkdir -p "$objs"
    (cd "$objs" && ar x "$lib")
    local probe_obj
    probe_obj="$(ls "$objs"/dropmax_no_std_probe-*.o)"

    local forbidden
    forbidden="$(symbols "$lib" | awk '{print $3}' | sort -u | c++filt |
        grep -E '__rust_(alloc|dealloc|realloc|alloc_zeroed|alloc_error_handler|no_alloc_shim)|__rg_|__rdl_|__rde_|(^|[^A-Za-z0-9_:])(std|alloc)::' || true)"
    if [ -n "$forbidden" ]; then
        fail "$name: std/alloc/allocator symbols in the archive:"
        printf '      %s\n' $forbidden
    else
        pass "no allocator, std:: or alloc:: symbol in the archive"
    fi
    # Inlining can erase every alloc/std symbol; the line tables still name the sources.
    local lines sources
    lines="$(readelf --debug-dump=line "$probe_obj" 2>/dev/null || true)"
    sources="$(grep -oE 'library/(alloc|std)/[^ ]*' <<<"$lines" | sort -u || true)"
    if [ -n "$sources" ]; then
        fail "$name: code from the alloc/std crates in the object (line tables):"
        printf '      %s\n' $sources
    elif ! grep -q 'library/core' <<<"$lines"; then
        fail "$name: the object has no line tables (debug = \"line-tables-only\" lost?)"
    else
        pass "no code from library/alloc or library/std in the object's line tables"
    fi

    local defined imports missing=""
    defined="$(symbols "$lib" | awk '$2 != "UND" && ($1 == "GLOBAL" || $1 == "WEAK") {print $3}' | sort -u)"
    imports="$(symbols "$probe_obj" | awk '$2 == "UND" && $3 != "" {print $3}' | sort -u)"
    for e in $(exports "$features"); do
        grep -qx "$e" <<<"$defined" || missing="$missing $e"
    done
    [ -z "$missing" ] && pass "exports every probe entry point of its configuration" || fail "$name: missing exports:$missing"
    local foreign
    foreign="$(comm -23 <(printf '%s\n' $imports) <(printf '%s\n' $defined $mem_imports $panic_symbol | sort -u))"
    if [ -n "$foreign" ]; then
        fail "$name: the probe imports symbols from outside core/compiler_builtins: $(echo $foreign)"
    else
        pass "imports nothing but $(comm -12 <(printf '%s\n' $imports) <(printf '%s\n' $mem_imports | sort) | xargs)"
    fi

    local panics=0
    if grep -qx "$panic_symbol" <<<"$imports"; then
        panics=1
        fail "$name: a panic path survives: the object references $panic_symbol"
    else
        pass "no panic path survives (the object never references $panic_symbol)"
    fi
    if [ "$t" = host ]; then
        if "$cc" -std=c11 -O1 -o "$dir/probe" c/main.c "$lib" -lm >"$dir/link.log" 2>&1; then
            pass "links into a C program ($cc) with the panic symbol left undefined"
            if out="$("$dir/probe" 2>&1)"; then
                pass "runs: $out"
            else
                fail "$name: the C program fails: $out"
            fi
        else
            sed 's/^/      /' "$dir/link.log" | head -20
            fail "$name: the C program does not link"
            panics=1
        fi
    elif cross_link "$dir" "$t" "$features"; then
        pass "links (rust-lld, rooted at the exports) with the panic symbol left undefined: .text $(text_size "$dir/probe.elf") bytes"
    else
        sed 's/^/      /' "$dir/link.log" | head -8
        fail "$name: the image does not link"
        panics=1
    fi
    if [ "$panics" = 1 ]; then
        echo "      where the panics come from:"
        diagnose_panics "$dir" "$t" "$features"
    fi

    if [ -n "$features" ]; then
        local wide
        wide="$(wide_code "$probe_obj")"
        if [ -n "$wide" ]; then
            fail "$name: the Scalar-only build links the wide tables:"
            sed 's/^/      /' <<<"$wide"
        else
            local full="$here/target/${name%-fw-*}/objects" control
            control="$(wide_code "$(ls "$full"/dropmax_no_std_probe-*.o 2>/dev/null | head -1)" 2>/dev/null | grep -c . || true)"
            pass "nothing of the wide tables is linked (no wide:: symbol, no line from wide, portable.rs, vector.rs; the all-kernels probe here shows ${control:-?})"
        fi
    fi
}

# check_size NAME TARGET OPT: the linked .text against size-budget.txt.
check_size() {
    local name="$1" t="$2" opt="$3" dir="$here/target/$1" kind="${1#*-O$3}"
    kind="${kind#-}"
    kind="${kind:-all-kernels}"
    [ -f "$dir/probe.elf" ] || return 0
    local size budget
    size="$(text_size "$dir/probe.elf")"
    budget="$(awk -v t="$t" -v k="$kind" -v o="$opt" '$1 == t && $2 == k && $3 == o {print $4}' size-budget.txt)"
    if [ -z "$budget" ]; then
        fail "size: no budget for $t $kind opt-level $opt in size-budget.txt (measured .text $size bytes)"
    elif [ "$size" -gt "$budget" ]; then
        fail "size: $t $kind opt-level $opt: .text $size bytes, over its budget of $budget"
    else
        pass "size: $t $kind opt-level $opt: .text $size bytes (budget $budget)"
    fi
}

# The canaries of one target (their builds are done).
check_canaries() {
    local t="$1" name
    echo
    echo "=== canaries ($t): each deliberate breakage must be caught"
    while read -r name _ _ copt cfeatures; do
        local dir="$here/target/$name" log="$here/target/$name/build.log"
        case "$cfeatures" in
            canary-std*)
                if [ "$(cat "$dir/build.rc")" = 0 ]; then
                    fail "$name: a probe that links std still builds"
                elif grep -q 'duplicate lang item `panic_impl`' "$log"; then
                    pass "canary-std (extern crate std) fails: $(grep -m1 'duplicate lang item' "$log")"
                elif [ "$t" != host ] && grep -q "can't find crate for \`std\`" "$log"; then
                    # A target without std: the build fails even earlier.
                    pass "canary-std (extern crate std) fails: $(grep -m1 "can't find crate for" "$log")"
                else
                    fail "$name failed for another reason:" && sed 's/^/      /' "$log"
                fi
                ;;
            canary-alloc*)
                if [ "$(cat "$dir/build.rc")" = 0 ]; then
                    fail "$name: a probe that allocates still builds"
                elif grep -q 'no global memory allocator found' "$log"; then
                    pass "canary-alloc (alloc::vec!) fails: $(grep -m1 'no global memory allocator' "$log" | cut -c1-80)..."
                else
                    fail "$name failed for another reason:" && sed 's/^/      /' "$log"
                fi
                ;;
            canary-panic*)
                local features="${cfeatures#canary-panic}"
                features="${features#,}"
                if [ "$(cat "$dir/build.rc")" != 0 ]; then
                    fail "$name: does not build:" && sed 's/^/      /' "$log"
                elif ! grep -q "UND $panic_symbol\$" <<<"$(symbols "$dir/$lib_name")"; then
                    fail "$name: a reachable bounds check leaves no reference to $panic_symbol (opt-level $copt)"
                elif [ "$t" = host ]; then
                    if "$cc" -std=c11 -O1 -o "$dir/probe-canary" c/main.c "$dir/$lib_name" -lm >"$dir/link.log" 2>&1; then
                        fail "$name: a reachable bounds check still links"
                    elif grep -q "undefined reference to \`$panic_symbol'" "$dir/link.log"; then
                        pass "canary-panic (x[i]) fails to link: $(grep -m1 -o "undefined reference to \`$panic_symbol'" "$dir/link.log")"
                    else
                        fail "$name failed to link for another reason:" && sed 's/^/      /' "$dir/link.log"
                    fi
                elif cross_link "$dir" "$t" "$features" -u dropmax_probe_canary_panic; then
                    fail "$name: a reachable bounds check still links"
                elif grep -q "undefined symbol: $panic_symbol" "$dir/link.log"; then
                    pass "canary-panic (x[i]) at opt-level $copt fails to link: $(grep -m1 -o "undefined symbol: $panic_symbol" "$dir/link.log")"
                else
                    fail "$name failed to link for another reason:" && sed 's/^/      /' "$dir/link.log"
                fi
                ;;
        esac
    done < <(canary_configs "$t")
}

# ---------------------------------------------------------------------------------------------
echo "dropmax no_std / no-alloc / no-panic probe ($(rustc --version), $("$cc" --version | head -1))"
if command -v cargo-fmt >/dev/null || cargo fmt --version >/dev/null 2>&1; then
    cargo fmt --check && pass "probe source formatted" || fail "probe source not formatted (cargo fmt in $here)"
fi
for t in $targets; do
    if [ "$t" != host ] && ! rustc --print sysroot | xargs -I{} test -d "{}/lib/rustlib/$t"; then
        fail "target $t is not installed (rustup target add $t)"
    fi
done
[ "$failures" -eq 0 ] || exit 1

# Build phase: one job per cargo directory (its configurations one after the other, canaries
# last), DROPMAX_PROBE_JOBS of them at once.
all_builds="$(
    printf '%s\n' "${configs[@]}"
    for t in $targets; do canary_configs "$t"; done
)"
jobs="${DROPMAX_PROBE_JOBS:-$(nproc 2>/dev/null || echo 1)}"
start=$SECONDS
echo "building $(grep -c . <<<"$all_builds") probes in $(awk '{print $2, $3, $4}' <<<"$all_builds" | sort -u | wc -l) cargo directories, $jobs at a time"
while read -r group; do
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
    (
        awk -v g="$group" '($2 " " $3 " " $4) == g' <<<"$all_builds" | while read -r n t c o f; do
            build "$n" "$t" "$c" "$o" "$f" || true
        done
    ) &
done < <(awk '{print $2, $3, $4}' <<<"$all_builds" | awk '!seen[$0]++')
wait
echo "built in $((SECONDS - start)) s"

for c in "${configs[@]}"; do
    # shellcheck disable=SC2086
    check_config $c
done

echo
echo "=== code size: linked .text against size-budget.txt"
for c in "${configs[@]}"; do
    read -r n t _ o _ <<<"$c"
    if [ "$t" != host ]; then
        check_size "$n" "$t" "$o"
    fi
done

# The canaries need a dependency graph that builds; when it does not, the failure above already
# shows a detector at work.
if [ "$failures" -eq 0 ]; then
    for t in $targets; do check_canaries "$t"; done
else
    echo
    echo "=== canaries: skipped (the probe itself failed)"
fi

echo
if [ "$failures" -gt 0 ]; then
    echo "no_std probe: $failures check(s) FAILED"
    exit 1
fi
echo "no_std probe: all checks passed (${#configs[@]} configurations, canaries on: $targets)"
