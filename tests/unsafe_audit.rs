//! The library denies `unsafe_code` and allows it in three places, all in
//! `src/isa/x86_64/mod.rs`: reading XCR0 during CPU detection, calling a table's microkernel once
//! detection confirmed its target features, and the intrinsics of a table's vector types (one
//! macro). `deny` can be overridden with an `allow` anywhere, so this counts them: another one must
//! be a decision, not a drift. Each is exercised by the whole test suite, which runs every table
//! the CPU supports (`for_each_kernel!`).

use std::path::Path;

fn rust_files(dir: &Path, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).expect("src is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).expect("a source file");
            out.push((path.display().to_string(), text));
        }
    }
}

#[test]
fn three_unsafe_blocks_each_with_its_reason() {
    let mut files = Vec::new();
    rust_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    assert!(files.len() >= 10, "found {} source files", files.len());
    let count = |needle: &str| -> Vec<String> {
        files
            .iter()
            .flat_map(|(name, text)| text.matches(needle).map(move |_| name.clone()))
            .collect()
    };
    let lib = files
        .iter()
        .find(|(name, _)| name.ends_with("lib.rs"))
        .map(|(_, t)| t.as_str())
        .unwrap_or_default();
    assert!(
        lib.contains("#![deny(unsafe_code)]"),
        "lib.rs must deny unsafe_code"
    );
    let allows = count("#[allow(unsafe_code");
    let blocks = count("unsafe {");
    let home = "src/isa/x86_64/mod.rs";
    assert_eq!(allows.len(), 3, "allow(unsafe_code) in {allows:?}");
    assert_eq!(blocks.len(), 3, "unsafe blocks in {blocks:?}");
    assert!(
        allows.iter().chain(&blocks).all(|f| f.ends_with(home)),
        "unsafe outside {home}: {allows:?} {blocks:?}"
    );
    assert!(count("unsafe fn").is_empty() && count("unsafe impl").is_empty());
    let text = files
        .iter()
        .find(|(n, _)| n.ends_with(home))
        .map(|(_, t)| t.as_str())
        .unwrap_or_default();
    for (at, _) in text.match_indices("unsafe {") {
        assert!(
            text[at.saturating_sub(900)..at].contains("// SAFETY:"),
            "the unsafe block at byte {at} of {home} carries a SAFETY comment"
        );
    }
}
