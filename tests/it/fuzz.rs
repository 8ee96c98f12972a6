//! Property tests: parse + validate never panics, whatever the input, and
//! every problem it reports carries a position inside the input.
//! Run longer with PROPTEST_CASES=100000.

use clusterctl::spec::{Spec, SpecError};
use proptest::prelude::*;

fn check(text: &str) {
    match Spec::parse(text, "fuzz.yaml") {
        Ok(spec) => {
            // A valid spec must also build a model and render.
            let model = clusterctl::model::build(&spec).expect("model of a valid spec");
            clusterctl::render::render(&model).expect("render of a valid spec");
        }
        Err(SpecError::Invalid { problems, .. }) => {
            assert!(!problems.is_empty());
            // YAML also breaks lines at \r, NEL, U+2028 and U+2029.
            let breaks = text
                .chars()
                .filter(|c| matches!(c, '\n' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}'))
                .count();
            let lines = breaks + 2;
            for p in problems {
                assert!(p.line >= 1 && p.line <= lines, "{p} (of {lines} lines)");
            }
        }
        Err(e) => panic!("unexpected error {e}"),
    }
}

const DEV: &str = include_str!("../../examples/dev.yaml");
const HA: &str = include_str!("../../examples/ha.yaml");

/// YAML-ish text built from the tokens that matter.
fn yamlish() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("apiVersion: clusterctl.io/v1alpha1\n".to_string()),
        Just("kind: Cluster\n".to_string()),
        Just("kind: InstanceGroup\n".to_string()),
        Just("---\n".to_string()),
        Just("metadata:\n  name: x\n".to_string()),
        Just("spec:\n".to_string()),
        Just("  zones: [a]\n".to_string()),
        Just("  - ".to_string()),
        Just(": ".to_string()),
        Just("&a ".to_string()),
        Just("*a\n".to_string()),
        Just("{".to_string()),
        Just("[".to_string()),
        Just("\"".to_string()),
        "[ -~]{0,12}".prop_map(|s| s),
        Just("\n".to_string()),
        Just("\t".to_string()),
    ];
    proptest::collection::vec(token, 0..40).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_yamlish_never_panics(text in yamlish()) {
        check(&text);
    }

    #[test]
    fn arbitrary_bytes_never_panic(text in "\\PC{0,200}") {
        check(&text);
    }

    /// Replaces one line of a valid example with random text or drops it.
    #[test]
    fn mutated_examples_never_panic(which in 0..2usize, line in 0..200usize, replacement in prop_oneof![Just(String::new()), "[ -~]{0,30}"]) {
        let base = if which == 0 { DEV } else { HA };
        let mut lines: Vec<&str> = base.lines().collect();
        let i = line % lines.len();
        lines[i] = &replacement;
        check(&lines.join("\n"));
    }

    /// Changes one scalar value of a valid example.
    #[test]
    fn mutated_values_never_panic(line in 0..200usize, value in prop_oneof![
        Just("-1".to_string()), Just("0".to_string()), Just("99999999999".to_string()), Just("~".to_string()),
        Just("[]".to_string()), Just("{}".to_string()), Just("1.5".to_string()), Just("\"\"".to_string()),
        "[a-z0-9./:*-]{0,20}",
    ]) {
        let mut lines: Vec<String> = HA.lines().map(str::to_string).collect();
        let i = line % lines.len();
        if let Some(pos) = lines[i].find(": ") {
            lines[i] = format!("{}: {value}", &lines[i][..pos]);
        }
        check(&lines.join("\n"));
    }
}
