//! Shell completions and manual pages come from the command line's own definition, so
//! they name every command and flag `--help` does.

use std::path::PathBuf;
use std::process::Command;

fn parley(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_parley")).args(args).output().expect("runs");
    assert!(out.status.success(), "parley {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// The long flags `parley ARGS --help` lists.
fn flags(args: &[&str]) -> Vec<String> {
    let mut with_help = args.to_vec();
    with_help.push("--help");
    let help = parley(&with_help);
    let mut flags: Vec<String> = help
        .split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == ']')
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(|w| w.split('=').next().unwrap_or(w).trim_end_matches('.').to_owned())
        .collect();
    flags.sort();
    flags.dedup();
    flags
}

#[test]
fn bash_completion_is_valid_bash_and_knows_the_admin_commands() {
    let script = parley(&["completions", "bash"]);
    let dir = std::env::temp_dir().join(format!("parley-completions-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("parley.bash");
    std::fs::write(&file, &script).expect("written");
    let checked = Command::new("bash").arg("-n").arg(&file).output().expect("bash runs");
    assert!(checked.status.success(), "{}", String::from_utf8_lossy(&checked.stderr));
    for word in ["backup", "restore", "check", "completions", "--data-dir", "--listen", "--tls-cert"] {
        assert!(script.contains(word), "{word} is not completed");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn zsh_and_fish_completions_name_every_command_and_flag() {
    let zsh = parley(&["completions", "zsh"]);
    assert!(zsh.starts_with("#compdef parley"), "{}", &zsh[..zsh.len().min(80)]);
    let fish = parley(&["completions", "fish"]);
    for command in ["serve", "chat", "bench", "log", "admin", "completions"] {
        assert!(zsh.contains(&format!("'{command}:")), "zsh lacks {command}");
        assert!(fish.contains(&format!("-a \"{command}\"")), "fish lacks {command}");
    }
    for flag in flags(&["serve"]) {
        let long = flag.trim_start_matches('-');
        assert!(fish.contains(&format!("-l {long}")), "fish lacks serve {flag}");
    }
}

#[test]
fn the_manual_pages_document_every_command_and_flag() {
    let dir: PathBuf = std::env::temp_dir().join(format!("parley-man-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    parley(&["man", dir.to_str().expect("UTF-8 path")]);
    let page = |name: &str| std::fs::read_to_string(dir.join(format!("{name}.1"))).expect(name);
    let top = page("parley");
    assert!(top.contains(&format!(".TH parley 1  \"parley {}\"", env!("CARGO_PKG_VERSION"))), "{top}");
    for (command, args) in [
        ("parley-serve", &["serve"][..]),
        ("parley-chat", &["chat"]),
        ("parley-admin-backup", &["admin", "backup"]),
        ("parley-admin-restore", &["admin", "restore"]),
        ("parley-admin-check", &["admin", "check"]),
        ("parley-log-export", &["log", "export"]),
        ("parley-completions", &["completions"]),
    ] {
        let text = page(command);
        for flag in flags(args) {
            // roff escapes each dash.
            let escaped = flag.replace('-', "\\-");
            assert!(text.contains(&escaped), "{command}.1 lacks {flag}");
        }
    }
    assert!(!dir.join("parley-man.1").exists(), "the hidden command has no page");
    let _ = std::fs::remove_dir_all(&dir);
}
