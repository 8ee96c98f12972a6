//! Time to validate + render `examples/large.yaml` (3 zones, 43 instance
//! groups). Target: under 50 ms. Run with `scripts/bench render` or
//! `cargo bench --bench render`; prints figures, asserts nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use clusterctl::{model, render, spec::Spec};

fn stats(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let n = samples.len();
    println!(
        "{name:<28} n={n:<4} min {:>8.3} ms  median {:>8.3} ms  p95 {:>8.3} ms  max {:>8.3} ms",
        ms(samples[0]),
        ms(samples[n / 2]),
        ms(samples[(n * 95 / 100).min(n - 1)]),
        ms(samples[n - 1])
    );
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` runs this once.
    let quick = std::env::args().any(|a| a == "--test")
        || std::env::var_os("CLUSTERCTL_BENCH_QUICK").is_some();
    let iterations = if quick { 2 } else { 100 };
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/large.yaml");
    let text = std::fs::read_to_string(path).expect("examples/large.yaml");
    let (mut validate, mut build, mut rend, mut total) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut files = 0;
    let mut resources = 0;
    for _ in 0..iterations {
        let t0 = Instant::now();
        let spec = Spec::parse(&text, "examples/large.yaml").expect("valid");
        let t1 = Instant::now();
        let m = model::build(&spec).expect("model");
        let t2 = Instant::now();
        let r = render::render(&m).expect("render");
        let t3 = Instant::now();
        validate.push(t1 - t0);
        build.push(t2 - t1);
        rend.push(t3 - t2);
        total.push(t3 - t0);
        files = r.files.len();
        resources = m.resources.len();
    }
    println!("examples/large.yaml: {resources} resources, {files} files rendered");
    stats("parse + default + validate", validate);
    stats("build model", build);
    stats("render (terraform+addons)", rend);
    stats("validate + render (total)", total);
    println!("target: total median under 50 ms");
}
