//! The README's configuration table is the table `loopctl init` writes.

use loop_core::config::KEYS;

#[test]
fn the_readme_lists_every_config_key_with_its_default() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let rows: Vec<&str> = readme
        .lines()
        .filter(|line| line.starts_with("| `"))
        .collect();
    for key in KEYS {
        let default = if key.default.is_empty() {
            "—".to_owned()
        } else {
            format!("`{}`", key.default.replace('|', "\\|"))
        };
        let row = format!("| `{}` | {default} | {} |", key.name, key.doc);
        assert!(rows.contains(&row.as_str()), "README lacks the row:\n{row}");
    }
    let documented = rows
        .iter()
        .filter(|row| {
            KEYS.iter()
                .any(|k| row.starts_with(&format!("| `{}` |", k.name)))
        })
        .count();
    assert_eq!(
        documented,
        KEYS.len(),
        "a key is listed twice, or one the code does not know"
    );
}
