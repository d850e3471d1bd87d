//! Erasure of a customer's personal data, with receipts.

use idic_platform::{
    ApiError, ApiResult, idempotency,
    jobs::timestamp,
    validate::{self, Violations},
};
use idic_proto::identification::v1 as pb;
use prost::Message as _;
use tonic::Request;

use super::{
    IdentificationApi, caller,
    merge_rpcs::{check_reason, forget},
};
use crate::{
    domain::CustomerId,
    store::erasure::{Erasure, erasure_name},
};

/// EraseCustomer: erases a customer (and those merged into it) and answers the receipt.
pub(super) async fn erase(
    api: &IdentificationApi,
    request: Request<pb::EraseCustomerRequest>,
) -> ApiResult<pb::ErasureReceipt> {
    let caller = caller(&request)?;
    let encoded = request.get_ref().encode_to_vec();
    let pb::EraseCustomerRequest { name, reason, request_id } = request.into_inner();
    let mut v = Violations::new();
    let customer = v.check("", validate::resource_id(&name, "customers", "name")).map(CustomerId);
    check_reason(&mut v, &reason);
    let request_id = v.check("", validate::request_id(&request_id, "request_id")).flatten();
    v.finish()?;
    let customer = customer.ok_or_else(|| ApiError::invalid("name", "is required"))?;
    let configured = api.config.erasure_hash_key().await?;
    let key = api.store.erasure_key(configured.as_deref()).await?;
    let hash = idempotency::request_hash(&encoded);
    let (erasure, touched) =
        api.store.erase(customer, &key, &caller.name, &reason, request_id.map(|id| (id, hash.as_slice()))).await?;
    forget(api, &touched).await;
    let receipt = api
        .store
        .erasure(erasure)
        .await?
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("{} vanished", erasure_name(erasure))))?;
    Ok(receipt_to_proto(&receipt))
}

/// GetErasureReceipt: the receipt with the confirmations received so far.
pub(super) async fn get_receipt(
    api: &IdentificationApi,
    request: Request<pb::GetErasureReceiptRequest>,
) -> ApiResult<pb::ErasureReceipt> {
    let pb::GetErasureReceiptRequest { name } = request.into_inner();
    let id = validate::resource_id(&name, "erasures", "name")?;
    let receipt = api.store.erasure(id).await?.ok_or(ApiError::NotFound(name))?;
    Ok(receipt_to_proto(&receipt))
}

fn receipt_to_proto(erasure: &Erasure) -> pb::ErasureReceipt {
    pb::ErasureReceipt {
        name: erasure_name(erasure.id),
        customer: erasure.customer.resource_name(),
        merged_customers: erasure.merged_customers.iter().map(CustomerId::resource_name).collect(),
        state: if erasure.complete_time.is_some() { pb::ErasureState::Completed } else { pb::ErasureState::InProgress }
            as i32,
        reason: erasure.reason.clone(),
        requested_by: erasure.requested_by.clone(),
        request_time: Some(timestamp(erasure.request_time)),
        complete_time: erasure.complete_time.map(timestamp),
        confirmations: erasure
            .confirmations
            .iter()
            .map(|c| pb::ServiceConfirmation {
                service: c.service.clone(),
                confirmed: c.confirm_time.is_some(),
                confirm_time: c.confirm_time.map(timestamp),
            })
            .collect(),
        identifiers_erased: erasure.identifiers_erased,
        facts_erased: erasure.facts_erased,
        consent_records_anonymised: erasure.consent_records_anonymised,
    }
}
