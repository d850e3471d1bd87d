//! Runs the `idic` binary as a user would (no configuration or token from the
//! environment) and reads the counts of the summaries and the bench tables it prints
//! (shared by the client command tests).

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

/// One row of the table: scenario, concurrency, requests/s, p50, p99, p99.9, errors, share of empty.
pub struct Row {
    pub scenario: String,
    pub concurrency: usize,
    pub requests_per_second: f64,
    pub errors: u64,
    pub of_empty: String,
}

/// The rows of the table a bench command prints.
pub fn table(output: &str) -> Vec<Row> {
    let header =
        output.lines().position(|l| l.starts_with("scenario")).unwrap_or_else(|| panic!("no table:\n{output}"));
    output
        .lines()
        .skip(header + 1)
        .take_while(|l| !l.trim().is_empty() && !l.starts_with("note:"))
        .map(|line| {
            let cells: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(cells.len(), 8, "a row has 8 cells: {line}");
            Row {
                scenario: cells[0].to_owned(),
                concurrency: cells[1].parse().expect("concurrency"),
                requests_per_second: cells[2].parse().expect("requests/s"),
                errors: cells[6].parse().expect("errors"),
                of_empty: cells[7].to_owned(),
            }
        })
        .collect()
}
