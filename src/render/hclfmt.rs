//! Lays out rendered HCL the way `terraform fmt` does, so that templates can
//! be written for readability and the output still passes `fmt -check`:
//! consecutive single-line attributes at one indentation get their `=`
//! aligned; a multi-line value, a block, a blank line or a comment line ends
//! the run. Also trims trailing spaces and collapses blank lines.

struct Attr {
    indent: usize,
    key_end: usize,
    value_start: usize,
}

fn key_len(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    if b.first() == Some(&b'"') {
        let mut i = 1;
        while i < b.len() {
            match b[i] {
                b'\\' => i += 2,
                b'"' => return Some(i + 1),
                _ => i += 1,
            }
        }
        return None;
    }
    let n = s
        .bytes()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-')
        .count();
    (n > 0 && !b[0].is_ascii_digit()).then_some(n)
}

/// A single-line attribute: `key = value` whose value does not open a
/// multi-line construct.
fn attr(line: &str) -> Option<Attr> {
    let indent = line.len() - line.trim_start().len();
    let rest = &line[indent..];
    let k = key_len(rest)?;
    let after = &rest[k..];
    let trimmed = after.trim_start();
    if !trimmed.starts_with('=') || trimmed.starts_with("==") {
        return None;
    }
    let value = trimmed[1..].trim_start();
    let code = value.split(" #").next().unwrap_or(value).trim_end();
    if code.is_empty()
        || code.ends_with('{')
        || code.ends_with('[')
        || code.ends_with('(')
        || code.contains("<<")
    {
        return None;
    }
    Some(Attr {
        indent,
        key_end: indent + k,
        value_start: line.len() - value.len(),
    })
}

/// Formats HCL text.
pub fn format(text: &str) -> String {
    let mut lines: Vec<String> = Vec::new();
    for raw in text.lines() {
        let line = raw.trim_end();
        let blank = line.is_empty();
        let prev_blank = lines.last().is_none_or(|l| l.is_empty());
        let prev_opens = lines.last().is_some_and(|l| l.ends_with('{'));
        if blank && (prev_blank || prev_opens) {
            continue;
        }
        if line.trim() == "}" && lines.last().is_some_and(|l| l.is_empty()) {
            lines.pop();
        }
        lines.push(line.to_string());
    }
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    let mut i = 0;
    while i < lines.len() {
        let Some(first) = attr(&lines[i]) else {
            i += 1;
            continue;
        };
        let mut run = vec![(i, first)];
        let mut j = i + 1;
        while j < lines.len() {
            match attr(&lines[j]) {
                Some(a) if a.indent == run[0].1.indent => run.push((j, a)),
                _ => break,
            }
            j += 1;
        }
        let width = run.iter().map(|(_, a)| a.key_end).max().unwrap_or(0);
        for (n, a) in run {
            let l = &lines[n];
            let key = &l[..a.key_end];
            let value = &l[a.value_start..];
            lines[n] = format!("{key}{} = {value}", " ".repeat(width - a.key_end));
        }
        i = j;
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_like_terraform_fmt() {
        let input = "resource \"a\" \"b\" {\n\n  cidr_block = \"x\"\n  enable_dns_hostnames = true\n  tags = {\n    \"K\" = \"x\"\n    \"Name\" = \"y\"\n  }\n  z = 1\n\n\n  c = 4\n  dd = 5\n\n}\n";
        let want = "resource \"a\" \"b\" {\n  cidr_block           = \"x\"\n  enable_dns_hostnames = true\n  tags = {\n    \"K\"    = \"x\"\n    \"Name\" = \"y\"\n  }\n  z = 1\n\n  c  = 4\n  dd = 5\n}\n";
        assert_eq!(format(input), want);
    }

    #[test]
    fn idempotent() {
        let once = format("a = 1\nbbb = [\n  x,\n]\ncc = \"=\"\n");
        assert_eq!(format(&once), once);
    }
}
