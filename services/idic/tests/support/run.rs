//! Runs the `idic` binary as a user would (no configuration or token from the
//! environment) and reads the counts of the summaries it prints (shared by the
//! client command tests).

/// What a run of the binary left.
pub struct Run {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `idic` with `args`.
pub async fn idic(args: &[&str]) -> Run {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_idic"))
        .args(args)
        .env_remove("IDIC_CONFIG")
        .env_remove("IDIC_SERVER")
        .env_remove("IDIC_TOKEN")
        .output()
        .await
        .expect("run idic");
    Run {
        ok: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The number on the summary line starting with `label`.
pub fn count(summary: &str, label: &str) -> i64 {
    let line = summary
        .lines()
        .find(|l| l.trim_start().starts_with(label))
        .unwrap_or_else(|| panic!("no {label:?} line in\n{summary}"));
    let number = line.trim_start()[label.len()..].split_whitespace().next().unwrap_or_default();
    number.parse().unwrap_or_else(|_| panic!("{label:?} has no count in\n{summary}"))
}
