//! Rebuild when embedded directories change: `include_dir!` cannot tell
//! cargo about the files it reads.
fn main() {
    for dir in ["addons", "terraform-templates", "src/model/nodeup.sh.tera"] {
        println!("cargo:rerun-if-changed={dir}");
    }
}
