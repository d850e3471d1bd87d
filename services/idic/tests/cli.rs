//! The binary's command line: help on every command, the settings reference, and
//! start-up refusing invalid configuration with the setting named.

use std::process::Command;

fn idic(args: &[&str], envs: &[(&str, &str)]) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_idic"));
    command.args(args).env_remove("IDIC_CONFIG");
    for (k, v) in envs {
        command.env(k, v);
    }
    command.output().expect("run idic")
}

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn every_command_has_help() {
    for command in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["migrate", "--help"],
        vec!["config", "--help"],
        vec!["demo", "--help"],
    ] {
        let output = idic(&command, &[]);
        assert!(output.status.success(), "{command:?}");
        assert!(stdout(&output).contains("Usage:"), "{command:?}");
    }
    // `serve --help` lists every setting with its environment variable.
    let help = stdout(&idic(&["serve", "--help"], &[]));
    for setting in ["IDIC_DATABASE_URL", "IDIC_REDIS_URL", "IDIC_CONCURRENCY_LIMIT", "IDIC_AUTH_API_KEYS_FILE"] {
        assert!(help.contains(setting), "{setting} missing from serve --help");
    }
}

#[test]
fn config_prints_a_documented_template() {
    let template = stdout(&idic(&["config"], &[]));
    assert!(template.contains("[database]") && template.contains("[identification]"));
    assert!(template.contains("Default value: 512"), "concurrency limit default documented");
}

#[test]
fn invalid_settings_stop_start_up_naming_the_setting() {
    let output = idic(&["migrate"], &[("IDIC_CONCURRENCY_LIMIT", "0")]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("concurrency_limit"), "{stderr}");

    let output = idic(&["migrate"], &[("IDIC_LOG_FORMAT", "xml")]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("IDIC_LOG_FORMAT") || stderr.contains("log_format"), "{stderr}");

    let output = idic(&["--config", "/nonexistent/idic.toml", "migrate"], &[]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("/nonexistent/idic.toml"));
}
