//! What the `parley` binary's tests share.

use std::path::PathBuf;

/// A directory of its own for one test, emptied first and deleted when dropped; named
/// after the test binary and the process, so parallel runs never meet.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    pub(crate) fn new(name: &str) -> TempDir {
        let binary = env!("CARGO_CRATE_NAME");
        let dir = std::env::temp_dir().join(format!("parley-{binary}-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
