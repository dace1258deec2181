//! The user documentation against the code: `docs/configuration.md` lists
//! exactly the keys the config loader accepts (read from the loader itself,
//! which refuses unknown keys and names the ones it knows), the metric names
//! in the docs and the example alert rules are ones hookgate exports, and
//! every relative link in the docs leads to a file in the repository.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use hookgate::config::Config;
use regex::Regex;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The keys the loader accepts in one table: an unknown key there is
/// refused with serde's list of the known ones.
fn accepted_keys(table_header: &str) -> BTreeSet<String> {
    let src = format!("{table_header}\nzz_not_a_key = 1\n");
    let env = |_: &str| Some("value-0123456789".to_owned());
    let errors = Config::parse(&src, Path::new("probe.toml"), &env).expect_err("an unknown key is an error");
    let msg = errors
        .0
        .iter()
        .map(|e| e.message.clone())
        .find(|m| m.contains("unknown field `zz_not_a_key`"))
        .unwrap_or_else(|| panic!("no unknown-field error for {table_header:?}: {errors}"));
    let known = msg.split_once("expected").map_or("", |(_, rest)| rest);
    Regex::new(r"`([a-z0-9_]+)`")
        .unwrap()
        .captures_iter(known)
        .map(|c| c[1].to_owned())
        .collect()
}

/// Table name -> keys documented in its section. "" is the top level.
fn documented_keys(md: &str) -> BTreeMap<String, BTreeSet<String>> {
    let heading = Regex::new(r"^#{2,3} `\[{1,2}([a-z._]+)\]{1,2}`").unwrap();
    let top_row = Regex::new(r"^\| \[`\[{1,2}([a-z.]+)\]{1,2}`\]").unwrap();
    let key_row = Regex::new(r"^\| `([a-z0-9_]+)` \|").unwrap();
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut table: Option<String> = None;
    for line in md.lines() {
        if let Some(c) = heading.captures(line) {
            table = Some(c[1].to_owned());
            out.entry(c[1].to_owned()).or_default();
        } else if line.starts_with("## ") {
            table = None;
        } else if let Some(c) = top_row.captures(line) {
            out.entry(String::new()).or_default().insert(c[1].to_owned());
        } else if let (Some(t), Some(c)) = (&table, key_row.captures(line)) {
            out.entry(t.clone()).or_default().insert(c[1].to_owned());
        }
    }
    out
}

#[test]
fn configuration_md_documents_exactly_the_keys_the_loader_accepts() {
    let md = read("docs/configuration.md");
    let documented = documented_keys(&md);
    let mut tables: Vec<(&str, String)> = vec![("", String::new())];
    let top = accepted_keys("");
    assert!(top.contains("server") && top.contains("webhooks"), "{top:?}");
    for t in &top {
        let header = if t == "webhooks" {
            "[[webhooks]]".to_owned()
        } else {
            format!("[{t}]")
        };
        tables.push((t, header));
    }
    tables.push(("webhooks.plugins", "[[webhooks]]\n[[webhooks.plugins]]".to_owned()));
    tables.push((
        "delivery.client_identities",
        "[delivery]\n[[delivery.client_identities]]".to_owned(),
    ));
    let mut problems = Vec::new();
    for (name, header) in &tables {
        let accepted = accepted_keys(header);
        let docs = documented.get(*name).cloned().unwrap_or_default();
        let label = if name.is_empty() { "top level" } else { name };
        for k in accepted.difference(&docs) {
            problems.push(format!("{label}: `{k}` is accepted but not documented"));
        }
        for k in docs.difference(&accepted) {
            problems.push(format!("{label}: `{k}` is documented but not accepted"));
        }
    }
    assert!(problems.is_empty(), "docs/configuration.md:\n{}", problems.join("\n"));
}

#[test]
fn the_examples_in_configuration_md_are_valid() {
    let md = read("docs/configuration.md");
    let blocks: Vec<&str> = md
        .split("```toml\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap())
        .collect();
    assert!(!blocks.is_empty());
    let env = |name: &str| {
        Some(if name.ends_with("_URL") {
            "redis://127.0.0.1:6379".to_owned()
        } else {
            "value-0123456789".to_owned()
        })
    };
    for b in blocks {
        if let Err(e) = Config::parse(b, Path::new("example.toml"), &env) {
            panic!("an example in docs/configuration.md is refused:\n{e}\n{b}");
        }
    }
}

#[test]
fn docs_name_only_metrics_hookgate_exports() {
    let name = Regex::new(r"hookgate_[a-z_]+").unwrap();
    let exported: BTreeSet<String> = name
        .find_iter(&read("gateway/src/metrics.rs"))
        .map(|m| m.as_str().to_owned())
        .collect();
    assert!(exported.len() >= 8, "{exported:?}");
    let base = |m: &str| {
        ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| m.strip_suffix(s))
            .unwrap_or(m)
            .to_owned()
    };
    for file in ["docs/operations.md", "docs/alerts.yml", "README.md"] {
        for m in name.find_iter(&read(file)) {
            let m = base(m.as_str());
            assert!(
                exported.contains(&m),
                "{file} names {m}, which hookgate does not export"
            );
        }
    }
    let ops = read("docs/operations.md");
    for m in &exported {
        assert!(ops.contains(m.as_str()), "docs/operations.md does not describe {m}");
    }
}

#[test]
fn links_in_the_docs_stay_inside_the_repository() {
    let link = Regex::new(r"\]\(([^)\s]+)\)").unwrap();
    let root = repo().canonicalize().unwrap();
    let mut files = vec![repo().join("README.md")];
    for e in std::fs::read_dir(repo().join("docs")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "md") {
            files.push(p);
        }
    }
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for c in link.captures_iter(&text) {
            let target = c[1].split('#').next().unwrap();
            if target.is_empty() || target.starts_with("https://") || target.starts_with("http://") {
                continue;
            }
            let resolved = file.parent().unwrap().join(target);
            let ok = resolved.canonicalize().is_ok_and(|p| p.starts_with(&root));
            assert!(
                ok,
                "{}: link {target:?} is not a file in the repository",
                file.display()
            );
        }
    }
}

#[test]
fn module_docs_point_to_docs_not_to_the_spec() {
    let mut stack = vec![repo().join("gateway/src"), repo().join("gateway/tests")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs" || x == "js") {
                let text = std::fs::read_to_string(&p).unwrap();
                assert!(
                    !text.contains(concat!("SPEC", " §")),
                    "{} cites SPEC sections users do not have",
                    p.display()
                );
            }
        }
    }
}
