//! Issue 16 §4: the README's commands build what the quickstart built (`--release`), so
//! trying an example does not start a second, debug build of the workspace.

#[test]
fn every_cargo_run_in_the_readme_is_a_release_build() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let mut n = 0;
    for (i, _) in text.match_indices("cargo run ") {
        let cmd: String = text[i..]
            .chars()
            .take_while(|c| *c != '`' && *c != '\n')
            .collect();
        assert!(cmd.contains("--release"), "README: {cmd}");
        n += 1;
    }
    assert!(n >= 5, "{n} cargo run commands");
}
