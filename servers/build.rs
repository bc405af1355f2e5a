//! Embeds the capstone's bundled site (`www/`) in the library: one
//! `include_bytes!` entry per file, so a copied or installed binary carries the
//! site with it instead of a path into the source tree.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let www = Path::new(&manifest).join("www");
    println!("cargo:rerun-if-changed={}", www.display());
    let mut files = Vec::new();
    collect(&www, "", &mut files);
    files.sort();
    let mut out = String::from("/// The bundled site: (path relative to the root, contents).\n");
    out.push_str("pub static FILES: &[(&str, &[u8])] = &[\n");
    for (rel, abs) in &files {
        println!("cargo:rerun-if-changed={abs}");
        writeln!(out, "    ({rel:?}, include_bytes!({abs:?})),").expect("writing to a String");
    }
    out.push_str("];\n");
    let dest =
        Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("bundled_site.rs");
    std::fs::write(&dest, out).expect("write bundled_site.rs into OUT_DIR");
}

/// Every regular file under `dir`, as (relative path with `/`, absolute path).
fn collect(dir: &Path, prefix: &str, files: &mut Vec<(String, String)>) {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read_dir({}): {e}", dir.display()));
    for entry in entries {
        let entry = entry.expect("read_dir entry");
        let name = entry
            .file_name()
            .into_string()
            .expect("bundled site file names are UTF-8");
        let path = entry.path();
        let rel = format!("{prefix}{name}");
        let kind = entry.file_type().expect("file type");
        if kind.is_dir() {
            println!("cargo:rerun-if-changed={}", path.display());
            collect(&path, &format!("{rel}/"), files);
        } else if kind.is_file() {
            files.push((rel, path.display().to_string()));
        }
    }
}
