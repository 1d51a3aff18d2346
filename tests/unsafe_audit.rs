//! The library denies `unsafe_code` and allows it in one function (`lanes::exp_finish_avx512`,
//! three register-only AVX-512 instructions `safe_arch` lacks). `deny` can be overridden with an
//! `allow` anywhere, so this counts them: a second one must be a decision, not a drift.

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
fn one_unsafe_block_in_one_allowed_function() {
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
    let allows = count("#[allow(unsafe_code)]");
    let blocks = count("unsafe {");
    assert_eq!(allows.len(), 1, "allow(unsafe_code) in {allows:?}");
    assert_eq!(blocks.len(), 1, "unsafe blocks in {blocks:?}");
    assert!(allows[0].ends_with("src/lanes.rs") && blocks[0].ends_with("src/lanes.rs"));
    assert!(count("unsafe fn").is_empty() && count("unsafe impl").is_empty());
    let lanes = files
        .iter()
        .find(|(n, _)| n.ends_with("src/lanes.rs"))
        .map(|(_, t)| t.as_str());
    let lanes = lanes.unwrap_or_default();
    let at = lanes.find("unsafe {").unwrap_or(0);
    assert!(
        lanes[at.saturating_sub(400)..at].contains("// SAFETY:"),
        "the unsafe block carries a SAFETY comment"
    );
}
