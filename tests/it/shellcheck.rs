//! The rendered user data passes shellcheck.

use crate::support::{EXAMPLES, render_example, tool};

#[test]
fn user_data_passes_shellcheck() {
    let Some(shellcheck) = tool("shellcheck") else {
        return;
    };
    let mut checked = 0;
    for example in EXAMPLES {
        let dir = render_example(example);
        let data = dir.path().join("terraform/data");
        let mut files: Vec<_> = std::fs::read_dir(&data)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.to_string_lossy().ends_with("_user_data"))
            .collect();
        files.sort();
        assert!(!files.is_empty());
        let out = std::process::Command::new(&shellcheck)
            .args(["--shell=bash", "--severity=style"])
            .args(&files)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{example}: shellcheck:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        checked += files.len();
    }
    assert_eq!(
        checked,
        2 + 5 + 43,
        "one user data file per launch template"
    );
}
