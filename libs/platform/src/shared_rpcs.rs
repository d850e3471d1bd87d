//! The RPCs every service answers the same way from its platform tables: GetJob,
//! ListJobs, CancelJob and ListAuditEntries. A service implements [`PlatformTables`]
//! and expands [`shared_rpcs!`](crate::shared_rpcs) inside its tonic trait impl.

use sqlx::PgPool;

use crate::jobs::Jobs;

/// Where a service keeps its jobs and audit log.
pub trait PlatformTables {
    /// The service's jobs.
    fn jobs(&self) -> &Jobs;
    /// The pool of the service's schema (for the audit log).
    fn pool(&self) -> &PgPool;
}

/// Expands to the GetJob, ListJobs, CancelJob and ListAuditEntries methods of a tonic
/// service trait, for a type implementing [`PlatformTables`].
/// Expands to the GetJob, ListJobs, CancelJob and ListAuditEntries methods of a tonic
/// service trait, for a type implementing [`PlatformTables`]. The methods are written
/// in the form `#[tonic::async_trait]` gives trait methods, because that attribute
/// runs before this macro expands.
#[macro_export]
macro_rules! shared_rpcs {
    () => {
        $crate::shared_rpcs!(@rpc get_job, GetJobRequest, Job, |this, r| $crate::shared_rpcs::PlatformTables::jobs(this).get(r));
        $crate::shared_rpcs!(@rpc list_jobs, ListJobsRequest, ListJobsResponse, |this, r| $crate::shared_rpcs::PlatformTables::jobs(this).list(r));
        $crate::shared_rpcs!(@rpc cancel_job, CancelJobRequest, Job, |this, r| $crate::shared_rpcs::PlatformTables::jobs(this).cancel(r));
        $crate::shared_rpcs!(@rpc list_audit_entries, ListAuditEntriesRequest, ListAuditEntriesResponse,
            |this, r| $crate::audit::list($crate::shared_rpcs::PlatformTables::pool(this), r));
    };
    (@rpc $method:ident, $request:ident, $response:ident, |$this:ident, $r:ident| $call:expr) => {
        fn $method<'life0, 'async_trait>(
            &'life0 self,
            request: ::tonic::Request<::idic_proto::common::v1::$request>,
        ) -> ::std::pin::Pin<
            ::std::boxed::Box<
                dyn ::std::future::Future<
                        Output = ::std::result::Result<
                            ::tonic::Response<::idic_proto::common::v1::$response>,
                            ::tonic::Status,
                        >,
                    > + ::std::marker::Send
                    + 'async_trait,
            >,
        >
        where
            'life0: 'async_trait,
            Self: 'async_trait,
        {
            ::std::boxed::Box::pin(async move {
                let $this = self;
                let $r = request.into_inner();
                Ok(::tonic::Response::new($call.await?))
            })
        }
    };
}
