//! The layer rule of src/lib.rs, enforced: each module imports only from lower
//! layers or its own folder, no provider imports another, and only the gRPC
//! edge (`api`, `server`, `cli`) touches `pb` or builds a `tonic::Status`.
//! It reads the source as text: every `crate::x` path (in `use` lines and in
//! code, `crate::{a, b::c}` groups included) and every `super::` path.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::BTreeSet,
    fs,
    path::{Path, PathBuf},
};

/// The layers, lowest first; a module may import its own layer's folder and any lower one.
const LAYERS: &[(&str, u8)] = &[
    ("error", 0),
    ("chat", 1),
    ("config", 2),
    // Metrics and traces: beside config; provider, pipeline and api record into it.
    ("observe", 3),
    ("provider", 4),
    ("pipeline", 5),
    ("api", 6),
    ("server", 7),
    ("cli", 7),
    ("lib", 8),
];

/// Modules that may name the generated protobuf code or build a `tonic::Status`.
const GRPC_EDGE: &[&str] = &["api", "server", "cli", "lib"];

/// Each provider's own module; none may import another.
const PROVIDERS: &[&str] = &["anthropic", "openai", "gemini", "ollama", "fake", "bedrock"];

fn rank(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, r)| *r)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The file's text without comments (line comments and doc comments).
fn code(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            // A `//` inside a string literal ("http://…") is not a comment.
            Some(i) if l[..i].matches('"').count() % 2 == 0 => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level names a `prefix` path reaches: `crate::a::b` gives `a`;
/// `crate::{a::x, b}` gives `a` and `b`.
fn targets(code: &str, prefix: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find(prefix) {
        let before = rest[..i].chars().last();
        rest = &rest[i + prefix.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            // The group's top-level items, up to its matching brace.
            let mut depth = 0;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.insert(head(&item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                if depth == 0 || !item.contains("::") {
                    item.push(c);
                }
            }
            if !item.trim().is_empty() {
                out.insert(head(&item));
            }
        } else {
            out.insert(head(rest));
        }
    }
    out.remove("");
    out
}

fn head(path: &str) -> String {
    path.trim()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// Where a file sits: its top module (`provider`, `api`, ...) and, inside
/// provider/, the provider module it belongs to, if any.
fn place(src: &Path, file: &Path) -> (String, Option<String>) {
    let rel: Vec<String> = file
        .strip_prefix(src)
        .unwrap()
        .iter()
        .map(|c| c.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    let top = match rel[0].as_str() {
        "main" => "lib".to_string(),
        other => other.to_string(),
    };
    let provider = (top == "provider" && rel.len() >= 2)
        .then(|| rel[1].clone())
        .filter(|p| PROVIDERS.contains(&p.as_str()));
    (top, provider)
}

fn violations(src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let mut bad = Vec::new();
    for file in &files {
        let (top, provider) = place(src, file);
        let Some(mine) = rank(&top) else {
            bad.push(format!(
                "{}: module {top:?} has no layer in LAYERS",
                file.display()
            ));
            continue;
        };
        let text = code(&fs::read_to_string(file).unwrap());
        let name = file.strip_prefix(src).unwrap().display().to_string();
        for target in targets(&text, "crate::") {
            if target == "pb" {
                if !GRPC_EDGE.contains(&top.as_str()) {
                    bad.push(format!("{name}: uses crate::pb outside the gRPC edge"));
                }
                continue;
            }
            match rank(&target) {
                None => bad.push(format!("{name}: crate::{target} has no layer")),
                Some(r) if target != top && r >= mine => bad.push(format!(
                    "{name}: {top} (layer {mine}) imports {target} (layer {r}), which is not below it"
                )),
                _ => {}
            }
            if let Some(p) = &provider {
                if target == "provider" {
                    for other in PROVIDERS.iter().filter(|o| *o != p) {
                        let needle = format!("crate::provider::{other}");
                        if text.contains(&needle) {
                            bad.push(format!("{name}: provider {p} imports provider {other}"));
                        }
                    }
                }
            }
        }
        if let Some(p) = &provider {
            for prefix in ["super::", "super::super::"] {
                for t in targets(&text, prefix) {
                    if t != *p && PROVIDERS.contains(&t.as_str()) {
                        bad.push(format!("{name}: provider {p} imports provider {t}"));
                    }
                }
            }
        }
        let names_status = text.contains("tonic::Status")
            || text.contains("Status::new(")
            || targets(&text, "tonic::").contains("Status");
        if !GRPC_EDGE.contains(&top.as_str()) && names_status {
            bad.push(format!(
                "{name}: builds or names tonic::Status outside the gRPC edge"
            ));
        }
    }
    bad
}

#[test]
fn every_module_imports_only_from_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let bad = violations(&src);
    assert!(bad.is_empty(), "layer rule broken:\n  {}", bad.join("\n  "));
}

#[test]
fn the_checker_sees_a_broken_rule() {
    // The checker itself, on a small tree that breaks each rule once.
    let dir = std::env::temp_dir().join(format!("chatwire-layers-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("provider/gemini")).unwrap();
    fs::create_dir_all(dir.join("chat")).unwrap();
    fs::write(
        dir.join("error.rs"),
        "// crate::server in a comment is fine\n",
    )
    .unwrap();
    fs::write(
        dir.join("chat/types.rs"),
        "use crate::{error::Error, config::Config};\n",
    )
    .unwrap();
    fs::write(
        dir.join("provider/gemini/mod.rs"),
        "use super::{openai::x, http::Wire};\nfn f() { let _ = crate::pb::X; }\n",
    )
    .unwrap();
    fs::write(
        dir.join("pipeline.rs"),
        "fn f() -> tonic::Status { todo!() }\n",
    )
    .unwrap();
    fs::create_dir_all(dir.join("config")).unwrap();
    fs::write(dir.join("config/mod.rs"), "use tonic::{Code, Status};\n").unwrap();
    let bad = violations(&dir);
    let _ = fs::remove_dir_all(&dir);
    let has = |s: &str| bad.iter().any(|b| b.contains(s));
    assert!(has("chat (layer 1) imports config"), "{bad:?}");
    assert!(has("provider gemini imports provider openai"), "{bad:?}");
    assert!(has("gemini/mod.rs: uses crate::pb"), "{bad:?}");
    assert!(has("pipeline.rs: builds or names tonic::Status"), "{bad:?}");
    assert!(
        has("config/mod.rs: builds or names tonic::Status"),
        "{bad:?}"
    );
    assert_eq!(bad.len(), 5, "{bad:?}");
}
