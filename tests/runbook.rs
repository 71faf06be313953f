//! The alert rules and the runbook stay true to the code: the rules parse (and
//! pass `promtool check rules` when promtool is installed), every metric an
//! alert uses is one the library records, every metric the library records is
//! explained in the runbook, and every alert links to a runbook section.

use std::collections::BTreeSet;
use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Metric names recorded by the library (`counter!`/`gauge!`/`histogram!`
/// calls, and ObserveLayer's prebuilt `status_keys!`).
fn recorded_metrics() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut stack = vec![root().join("crates"), root().join("src")];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                if !path.ends_with("tests") && !path.ends_with("target") {
                    stack.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                for macro_name in ["counter!(", "gauge!(", "histogram!(", "status_keys!("] {
                    for part in text.split(macro_name).skip(1) {
                        let part = part.trim_start();
                        if let Some(rest) = part.strip_prefix('"')
                            && let Some(end) = rest.find('"')
                            && rest[..end].starts_with("redis_")
                        {
                            names.insert(rest[..end].to_owned());
                        }
                    }
                }
            }
        }
    }
    names
}

fn metric_names_in(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(found) = text[i..].find("redis_") {
        let start = i + found;
        let mut end = start;
        while end < bytes.len()
            && (bytes[end].is_ascii_lowercase()
                || bytes[end] == b'_'
                || bytes[end].is_ascii_digit())
        {
            end += 1;
        }
        let name = &text[start..end];
        let name = name.strip_suffix("_bucket").unwrap_or(name);
        names.insert(name.trim_end_matches('_').to_owned());
        i = end;
    }
    names
}

/// GitHub's anchor for a heading.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

#[test]
fn alert_rules_parse_and_use_real_metrics_and_link_the_runbook() {
    let rules_path = root().join("docs/alerts.yml");
    let text = std::fs::read_to_string(&rules_path).expect("docs/alerts.yml");
    let rules: serde_yaml::Value = serde_yaml::from_str(&text).expect("alerts.yml is YAML");
    let runbook = std::fs::read_to_string(root().join("docs/RUNBOOK.md")).expect("RUNBOOK.md");
    let anchors: BTreeSet<String> = runbook
        .lines()
        .filter_map(|line| line.strip_prefix("### "))
        .map(anchor)
        .collect();
    let recorded = recorded_metrics();

    let groups = rules["groups"].as_sequence().expect("groups");
    let mut alerts = BTreeSet::new();
    for group in groups {
        for rule in group["rules"].as_sequence().expect("rules") {
            let name = rule["alert"].as_str().expect("alert name");
            assert!(alerts.insert(name.to_owned()), "duplicate alert {name}");
            let expr = rule["expr"].as_str().expect("expr");
            let r#for = rule["for"].as_str().expect("for");
            assert!(
                r#for.ends_with('m') || r#for.ends_with('s'),
                "{name}: `for` {for} is not a duration"
            );
            let severity = rule["labels"]["severity"].as_str().expect("severity");
            assert!(
                matches!(severity, "warning" | "critical"),
                "{name}: severity {severity}"
            );
            assert!(
                rule["annotations"]["summary"].as_str().is_some(),
                "{name}: summary"
            );
            let link = rule["annotations"]["runbook"]
                .as_str()
                .expect("runbook link");
            let (file, section) = link.split_once('#').expect("a link to a section");
            assert_eq!(file, "docs/RUNBOOK.md");
            assert!(
                anchors.contains(section),
                "{name}: no runbook section #{section} (have {anchors:?})"
            );
            for metric in metric_names_in(expr) {
                assert!(
                    recorded.contains(&metric),
                    "{name} uses {metric}, which the library never records"
                );
            }
            assert_eq!(
                expr.matches('(').count(),
                expr.matches(')').count(),
                "{name}: unbalanced parentheses"
            );
        }
    }
    for required in [
        "RedisFallbackShareHigh",
        "RedisFallbackLatencyHigh",
        "RedisClusterSlotsNotOk",
    ] {
        assert!(alerts.contains(required), "missing alert {required}");
    }
    assert!(
        text.contains("> 0.15") && text.contains("for: 5m"),
        "fallback share above 15 % for 5 minutes"
    );
    assert!(text.contains("> 0.05"), "p95 fallback latency above 50 ms");
    assert!(
        text.contains("< 16384"),
        "redis_cluster_slots_ok below 16384"
    );

    // promtool, when installed, has the last word on syntax.
    if let Ok(output) = std::process::Command::new("promtool")
        .args(["check", "rules"])
        .arg(&rules_path)
        .output()
    {
        assert!(
            output.status.success(),
            "promtool check rules failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn every_recorded_metric_is_explained_in_the_runbook() {
    let runbook = std::fs::read_to_string(root().join("docs/RUNBOOK.md")).expect("RUNBOOK.md");
    let documented = metric_names_in(&runbook);
    let recorded = recorded_metrics();
    assert!(recorded.len() >= 10, "found only {recorded:?}");
    let missing: Vec<_> = recorded.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "metrics recorded but not in docs/RUNBOOK.md: {missing:?}"
    );
    let stale: Vec<_> = documented
        .iter()
        .filter(|name| !recorded.contains(*name))
        .collect();
    assert!(
        stale.is_empty(),
        "metrics in docs/RUNBOOK.md that nothing records: {stale:?}"
    );
}
