//! `idic export duplicates FILE.csv`: writes the duplicate clusters of a cleansing job
//! as CSV, one line per cluster member, paging through `ListDuplicateClusters`.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use idic_proto::identification::v1::{
    ClusterDisposition, ClusterMember, DuplicateCluster, ListDuplicateClustersRequest, ListDuplicateClustersResponse,
};
use indicatif::ProgressStyle;

use crate::client::{self, ServerArgs};

/// Clusters asked for per page (the most the API gives).
const PAGE_SIZE: i32 = 1000;

/// Arguments of `idic export duplicates`.
#[derive(Debug, clap::Args)]
pub struct ExportDuplicatesArgs {
    /// The CSV file to write (replaced when the export is complete): a header line, then
    /// cluster_id,customer,score,disposition,survivor for each member of each cluster.
    file: PathBuf,
    /// The cleansing job, jobs/ID (or ID); default: the most recent successful one.
    #[arg(long, value_name = "jobs/ID")]
    job: Option<String>,
    #[command(flatten)]
    server: ServerArgs,
}

/// Runs the export and says how much it wrote.
pub async fn duplicates(args: ExportDuplicatesArgs) -> anyhow::Result<()> {
    let ExportDuplicatesArgs { file, job, server } = args;
    let parent = match job {
        Some(job) if job.starts_with("jobs/") => job,
        Some(job) => format!("jobs/{job}"),
        None => String::new(),
    };
    let mut identification = server.identification().await?;
    // Written beside the target and renamed at the end, so a failed export leaves no
    // partial file that looks complete.
    let partial = partial_path(&file);
    let mut writer = csv::Writer::from_path(&partial).with_context(|| format!("cannot write {}", partial.display()))?;
    writer.write_record(["cluster_id", "customer", "score", "disposition", "survivor"])?;

    let bar = client::progress_bar(
        0,
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} clusters")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let (mut clusters, mut members) = (0u64, 0u64);
    let mut page_token = String::new();
    let written: anyhow::Result<()> = async {
        loop {
            let request = ListDuplicateClustersRequest {
                parent: parent.clone(),
                page_size: PAGE_SIZE,
                page_token: std::mem::take(&mut page_token),
                disposition: ClusterDisposition::Unspecified as i32,
            };
            let ListDuplicateClustersResponse { clusters: page, next_page_token, total_size } =
                identification.list_duplicate_clusters(request).await.map_err(|s| client::explain(&s))?.into_inner();
            bar.set_length(u64::try_from(total_size).unwrap_or_default());
            for cluster in page {
                for record in rows(cluster) {
                    writer.write_record(&record)?;
                    members += 1;
                }
                clusters += 1;
                bar.inc(1);
            }
            if next_page_token.is_empty() {
                break;
            }
            page_token = next_page_token;
        }
        writer.flush()?;
        Ok(())
    }
    .await;
    bar.finish_and_clear();
    if let Err(error) = written {
        let _ = std::fs::remove_file(&partial);
        return Err(error.context(format!("export of duplicate clusters to {} failed", file.display())));
    }
    drop(writer);
    std::fs::rename(&partial, &file).with_context(|| format!("cannot write {}", file.display()))?;
    println!("wrote {members} members of {clusters} duplicate clusters to {}", file.display());
    Ok(())
}

/// `FILE.csv` → `.FILE.csv.partial` in the same directory (so the rename stays on one
/// file system).
fn partial_path(file: &Path) -> PathBuf {
    let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    file.with_file_name(format!(".{name}.partial"))
}

/// The CSV lines of one cluster: one per member.
fn rows(cluster: DuplicateCluster) -> Vec<[String; 5]> {
    let DuplicateCluster {
        name: _,
        cluster_id,
        members,
        links: _,
        disposition,
        survivor,
        merge: _,
        merge_candidates: _,
    } = cluster;
    let disposition = disposition_name(disposition);
    members
        .into_iter()
        .map(|ClusterMember { customer, score }| {
            [cluster_id.clone(), customer, score.to_string(), disposition.clone(), survivor.clone()]
        })
        .collect()
}

/// `CLUSTER_DISPOSITION_AUTO_MERGED` → `auto_merged`.
fn disposition_name(disposition: i32) -> String {
    ClusterDisposition::try_from(disposition)
        .map(|d| d.as_str_name().trim_start_matches("CLUSTER_DISPOSITION_").to_ascii_lowercase())
        .unwrap_or_else(|_| disposition.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_member_of_a_cluster_is_one_line_with_the_clusters_disposition_and_survivor() {
        let cluster = DuplicateCluster {
            cluster_id: "17".into(),
            members: vec![
                ClusterMember { customer: "customers/a".into(), score: 0.98 },
                ClusterMember { customer: "customers/b".into(), score: 0.5 },
            ],
            disposition: ClusterDisposition::AutoMerged as i32,
            survivor: "customers/a".into(),
            ..Default::default()
        };
        assert_eq!(
            rows(cluster),
            [
                ["17", "customers/a", "0.98", "auto_merged", "customers/a"].map(String::from),
                ["17", "customers/b", "0.5", "auto_merged", "customers/a"].map(String::from),
            ]
        );
        assert_eq!(disposition_name(ClusterDisposition::PartiallyMerged as i32), "partially_merged");
    }

    #[test]
    fn the_partial_file_sits_beside_the_target() {
        assert_eq!(partial_path(Path::new("/tmp/out/dups.csv")), Path::new("/tmp/out/.dups.csv.partial"));
        assert_eq!(partial_path(Path::new("dups.csv")), Path::new(".dups.csv.partial"));
    }
}
