#!/usr/bin/env bash
# Firmware-grade proofs for dropmax (contract section 5): the crate links without `std`, without
# `alloc`, and no panic is reachable from any public kernel or function. Needs only stable Rust,
# `cc` and binutils (`ar`, `readelf`; `objdump`/`addr2line` for the diagnosis of a failure).
#
# The probe (`src/lib.rs`) is a `#![no_std]` staticlib with its own `#[panic_handler]` and no
# global allocator. Its `extern "C"` functions call every public kernel and function of dropmax
# on inputs taken from their arguments (nothing to constant-fold), in every mode, mask kind and
# kernel variant. For each target-cpu configuration (`wide` compiles different SIMD code for each)
# it is built with fat LTO, opt-level 3, one codegen unit, panic = "abort", then:
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
#               memcpy/memmove/memset/memcmp/bcmp and what the archive itself defines. (An
#               allocation also leaves a panic path: capacity overflow, handle_alloc_error.)
#   no panic    the panic handler calls `dropmax_probe_panic_reached`, declared and never defined.
#               After fat LTO only code reachable from the exports survives, so the object
#               imports that symbol iff some panic path (bounds check, unwrap, division by zero,
#               overflow, `panic!`) survived optimisation in some public kernel. Checked twice:
#               the object's undefined symbols, and linking the staticlib into a C program
#               (c/main.c), which then fails with "undefined reference". The program is run once
#               as a smoke test. On failure, every call from ordinary code into the panic
#               machinery is listed with its inlined call chain (file:line).
#
# Every run also proves the detectors still bite on this toolchain: the probe's own
# `canary-std`, `canary-alloc` and `canary-panic` features must make the build, resp. the link,
# fail with the expected error.
#
# Builds go to target/ next to this script (one directory per configuration). Set
# DROPMAX_PROBE_CPUS to a subset of "baseline x86-64-v3 native" to check fewer configurations.
set -euo pipefail
export LC_ALL=C

here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
root="$(cd ../.. && pwd)"
cc="${CC:-cc}"

# Nothing from the caller's environment may weaken the build: the profile in Cargo.toml rules.
unset RUSTFLAGS CARGO_ENCODED_RUSTFLAGS CARGO_BUILD_RUSTFLAGS CARGO_BUILD_TARGET CARGO_INCREMENTAL
for v in $(compgen -e | grep -E '^CARGO_(PROFILE_|TARGET_)' || true); do unset "$v"; done

# The probe builds against the dependency versions the main crate's lock file pins.
if [ -f "$root/Cargo.lock" ]; then
    cp "$root/Cargo.lock" Cargo.lock
fi

failures=0
fail() {
    printf 'FAIL: %s\n' "$*"
    failures=$((failures + 1))
}
pass() { printf 'ok:   %s\n' "$*"; }

lib_name=libdropmax_no_std_probe.a
exports="dropmax_probe_softmax dropmax_probe_dropout dropmax_probe_lse dropmax_probe_philox
         dropmax_probe_philox_x4 dropmax_probe_philox_x8 dropmax_probe_philox_x16 dropmax_probe_rng
         dropmax_probe_error_display dropmax_probe_batch"
mem_imports="memcpy memmove memset memcmp bcmp"
panic_symbol=dropmax_probe_panic_reached

# build DIR FLAGS [FEATURES]: builds the probe into target/DIR, its log in target/DIR/build.log.
build() {
    local dir="$here/target/$1" flags="$2" features="${3:-}"
    mkdir -p "$dir"
    CARGO_TARGET_DIR="$dir" RUSTFLAGS="$flags" \
        cargo build --release --quiet ${features:+--features "$features"} >"$dir/build.log" 2>&1
}

# The symbol table of an ELF object or archive, as "BIND NDX NAME" lines (readelf, not nm: nm
# trips over the LLVM bitcode in compiler_builtins' objects).
symbols() { readelf -sW "$1" 2>/dev/null | awk 'NF >= 8 && $1 ~ /^[0-9]+:$/ {print $5, $7, $8}'; }

# diagnose_panics DIR: links with a stub panic symbol and lists every call from code outside
# `core` into a `core` function that reaches the panic handler, with its inlined call chain.
diagnose_panics() {
    local dir="$1" exe="$1/probe-diagnose"
    if ! command -v objdump >/dev/null || ! command -v addr2line >/dev/null; then
        echo "      (install binutils' objdump and addr2line for a diagnosis)"
        return
    fi
    printf 'void %s(void) { __builtin_trap(); }\n' "$panic_symbol" >"$dir/stub.c"
    "$cc" -O1 -no-pie -o "$exe" c/main.c "$dir/stub.c" "$dir/release/$lib_name" -lm 2>/dev/null || {
        echo "      (diagnostic link failed)"
        return
    }
    # The call graph from the disassembly; "bad" = the functions that reach the panic handler.
    objdump -d --no-show-raw-insn -C "$exe" | awk -v seed="$panic_symbol" '
        /^[0-9a-f]+ <.*>:$/ {
            fn = substr($0, index($0, "<") + 1); sub(/>:$/, "", fn)
            if (fn == seed || fn ~ /rust_begin_unwind$/) bad[fn] = 1
            next
        }
        /\t(call|jmp)[a-z]* +[0-9a-f]+ </ {
            t = substr($0, index($0, "<") + 1); sub(/>$/, "", t); sub(/\+0x[0-9a-f]+$/, "", t)
            if (t != fn) { n++; from[n] = fn; to[n] = t; addr[n] = $1; sub(/:$/, "", addr[n]) }
        }
        END {
            do { grown = 0
                 for (i = 1; i <= n; i++) if ((to[i] in bad) && !(from[i] in bad)) { bad[from[i]] = 1; grown = 1 }
            } while (grown)
            # Report where code outside core calls into core code that reaches the handler.
            for (i = 1; i <= n; i++)
                if ((to[i] in bad) && to[i] ~ /^(core::|__rustc::|<core::)/ && from[i] !~ /^(core::|__rustc::|<core::)/)
                    print addr[i], to[i]
        }' | sort -u | while read -r addr target; do
        printf '      call to %s at 0x%s; source lines, innermost first:\n' "$target" "$addr"
        addr2line -f -i -C -e "$exe" "0x$addr" | paste - - | sed 's/^/          /'
    done
}

# check_config NAME RUSTFLAGS
check_config() {
    local name="$1" flags="$2" dir="$here/target/$1"
    echo
    echo "=== ${name}${flags:+ ($flags)}: fat LTO, opt-level 3, codegen-units 1, panic=abort"
    if ! build "$name" "$flags"; then
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

    local lib="$dir/release/$lib_name" objs="$dir/objects"
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
    for e in $exports; do
        grep -qx "$e" <<<"$defined" || missing="$missing $e"
    done
    [ -z "$missing" ] && pass "exports every probe entry point" || fail "$name: missing exports:$missing"
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
    if [ "$panics" = 1 ]; then
        echo "      where the panics come from:"
        diagnose_panics "$dir"
    fi
}

# canaries: deliberate breakages of the probe itself must be caught (baseline build, in its own
# target directory so that the configurations' artifacts stay as they were checked).
check_canaries() {
    local dir="$here/target/canary"
    echo
    echo "=== canaries: each deliberate breakage must be caught"
    if build canary "" canary-std; then
        fail "canary-std: a probe that links std still builds"
    elif grep -q 'duplicate lang item `panic_impl`' "$dir/build.log"; then
        pass "canary-std (extern crate std) fails: $(grep -m1 'duplicate lang item' "$dir/build.log")"
    else
        fail "canary-std failed for another reason:" && sed 's/^/      /' "$dir/build.log"
    fi
    if build canary "" canary-alloc; then
        fail "canary-alloc: a probe that allocates still builds"
    elif grep -q 'no global memory allocator found' "$dir/build.log"; then
        pass "canary-alloc (alloc::vec!) fails: $(grep -m1 'no global memory allocator' "$dir/build.log" | cut -c1-80)..."
    else
        fail "canary-alloc failed for another reason:" && sed 's/^/      /' "$dir/build.log"
    fi
    if ! build canary "" canary-panic; then
        fail "canary-panic: does not build:" && sed 's/^/      /' "$dir/build.log"
    elif ! grep -q "UND $panic_symbol\$" <<<"$(symbols "$dir/release/$lib_name")"; then
        fail "canary-panic: a reachable bounds check leaves no reference to $panic_symbol"
    elif "$cc" -std=c11 -O1 -o "$dir/probe-canary" c/main.c "$dir/release/$lib_name" -lm >"$dir/link.log" 2>&1; then
        fail "canary-panic: a reachable bounds check still links"
    elif grep -q "undefined reference to \`$panic_symbol'" "$dir/link.log"; then
        pass "canary-panic (x[i]) fails to link: $(grep -m1 -o "undefined reference to \`$panic_symbol'" "$dir/link.log")"
    else
        fail "canary-panic failed to link for another reason:" && sed 's/^/      /' "$dir/link.log"
    fi
}

echo "dropmax no_std / no-alloc / no-panic probe ($(rustc --version), $("$cc" --version | head -1))"
if command -v cargo-fmt >/dev/null || cargo fmt --version >/dev/null 2>&1; then
    cargo fmt --check && pass "probe source formatted" || fail "probe source not formatted (cargo fmt in $here)"
fi

cpus="${DROPMAX_PROBE_CPUS:-baseline x86-64-v3 native}"
if [ "$(uname -m)" != x86_64 ]; then
    cpus="$(sed 's/x86-64-v3//' <<<"$cpus")"
fi
for cpu in $cpus; do
    case "$cpu" in
        baseline) check_config baseline "" ;;
        *) check_config "$cpu" "-C target-cpu=$cpu" ;;
    esac
done
# The canaries need a dependency graph that builds; when it does not, the failure above already
# shows a detector at work.
if [ "$failures" -eq 0 ]; then
    check_canaries
else
    echo
    echo "=== canaries: skipped (the probe itself failed)"
fi

echo
if [ "$failures" -gt 0 ]; then
    echo "no_std probe: $failures check(s) FAILED"
    exit 1
fi
echo "no_std probe: all checks passed ($(wc -w <<<"$cpus") configurations)"
