//! The browser client's files are embedded in the binary (`include_dir!`): rebuild
//! when any of them changes.

fn main() {
    println!("cargo:rerun-if-changed=web");
    println!("cargo:rerun-if-changed=tests/web");
}
