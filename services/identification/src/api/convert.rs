//! Conversions between the proto enums of consent and their domain counterparts.

use idic_platform::{ApiError, ApiResult};
use idic_proto::{common::v1 as common, identification::v1 as pb};

use crate::domain::consent::{Basis, Channel, Decision, Effective, Purpose};

/// A proto purpose; `None` for UNSPECIFIED or an unknown value.
pub fn purpose_from_proto(value: i32) -> Option<Purpose> {
    Some(match common::ConsentPurpose::try_from(value).ok()? {
        common::ConsentPurpose::Unspecified => return None,
        common::ConsentPurpose::Marketing => Purpose::Marketing,
        common::ConsentPurpose::Profiling => Purpose::Profiling,
        common::ConsentPurpose::DataSharing => Purpose::DataSharing,
        common::ConsentPurpose::Service => Purpose::Service,
        common::ConsentPurpose::Research => Purpose::Research,
    })
}

/// An optional proto purpose (a filter): `Ok(None)` for UNSPECIFIED, INVALID_ARGUMENT on
/// `field` for an unknown value.
pub fn optional_purpose_from_proto(value: i32, field: &str) -> ApiResult<Option<Purpose>> {
    match value {
        0 => Ok(None),
        v => purpose_from_proto(v)
            .map(Some)
            .ok_or_else(|| ApiError::invalid(field, format!("{v} is not a known ConsentPurpose"))),
    }
}

/// The proto purpose.
pub fn purpose_to_proto(purpose: Purpose) -> common::ConsentPurpose {
    match purpose {
        Purpose::Marketing => common::ConsentPurpose::Marketing,
        Purpose::Profiling => common::ConsentPurpose::Profiling,
        Purpose::DataSharing => common::ConsentPurpose::DataSharing,
        Purpose::Service => common::ConsentPurpose::Service,
        Purpose::Research => common::ConsentPurpose::Research,
    }
}

/// A proto channel: `Ok(None)` for UNSPECIFIED, INVALID_ARGUMENT on `field` for an
/// unknown value.
pub fn channel_from_proto(value: i32, field: &str) -> ApiResult<Option<Channel>> {
    let channel = common::Channel::try_from(value)
        .map_err(|_| ApiError::invalid(field, format!("{value} is not a known Channel")))?;
    Ok(Some(match channel {
        common::Channel::Unspecified => return Ok(None),
        common::Channel::Branch => Channel::Branch,
        common::Channel::Web => Channel::Web,
        common::Channel::App => Channel::App,
        common::Channel::CallCentre => Channel::CallCentre,
        common::Channel::Email => Channel::Email,
        common::Channel::Sms => Channel::Sms,
        common::Channel::Letter => Channel::Letter,
        common::Channel::Gift => Channel::Gift,
        common::Channel::Event => Channel::Event,
        common::Channel::SelfService => Channel::SelfService,
        common::Channel::AccountManager => Channel::AccountManager,
    }))
}

/// The proto channel; UNSPECIFIED for `None`.
pub fn channel_to_proto(channel: Option<Channel>) -> common::Channel {
    match channel {
        None => common::Channel::Unspecified,
        Some(Channel::Branch) => common::Channel::Branch,
        Some(Channel::Web) => common::Channel::Web,
        Some(Channel::App) => common::Channel::App,
        Some(Channel::CallCentre) => common::Channel::CallCentre,
        Some(Channel::Email) => common::Channel::Email,
        Some(Channel::Sms) => common::Channel::Sms,
        Some(Channel::Letter) => common::Channel::Letter,
        Some(Channel::Gift) => common::Channel::Gift,
        Some(Channel::Event) => common::Channel::Event,
        Some(Channel::SelfService) => common::Channel::SelfService,
        Some(Channel::AccountManager) => common::Channel::AccountManager,
    }
}

/// The proto status of a decision.
pub fn decision_to_proto(decision: Decision) -> pb::ConsentStatus {
    match decision {
        Decision::Granted => pb::ConsentStatus::Granted,
        Decision::Withdrawn => pb::ConsentStatus::Withdrawn,
    }
}

/// The status of an effective consent (UNSPECIFIED when nothing decided it).
pub fn status_to_proto(effective: &Effective<'_>) -> pb::ConsentStatus {
    effective.record.map_or(pb::ConsentStatus::Unspecified, |r| decision_to_proto(r.decision))
}

/// The proto basis.
pub fn basis_to_proto(basis: Basis) -> pb::ConsentBasis {
    match basis {
        Basis::Recorded => pb::ConsentBasis::Recorded,
        Basis::AllChannels => pb::ConsentBasis::AllChannels,
        Basis::Default => pb::ConsentBasis::Default,
    }
}
