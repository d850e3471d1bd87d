//! The IDIC v1 API as Rust: prost messages and tonic clients and servers for every
//! service, generated at build time from `proto/` by protox (no `protoc` needed).

#![allow(missing_docs, clippy::all, clippy::pedantic)]

/// `idic.common.v1`: customer references, money, periods, jobs, audit entries.
pub mod common {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("idic.common.v1");
    }
}

/// `idic.identification.v1`: customers, identifiers, resolution, merges, consent.
pub mod identification {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("idic.identification.v1");
    }
}

/// `idic.interaction.v1`: interactions, timelines, complaints, managers, contact policy.
pub mod interaction {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("idic.interaction.v1");
    }
}

/// `idic.segmentation.v1`: customer value, tiers, clusters, segments.
pub mod segmentation {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("idic.segmentation.v1");
    }
}

/// `idic.customization.v1`: catalog, configurator, recommendations, offers, campaigns.
pub mod customization {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("idic.customization.v1");
    }
}

/// The encoded `FileDescriptorSet` of the whole API, served by gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("idic_descriptor");

include!(concat!(env!("OUT_DIR"), "/method_scopes.rs"));

/// The scope an RPC path needs, or `None` for a path outside the IDIC API.
pub fn required_scope(path: &str) -> Option<&'static str> {
    METHOD_SCOPES.binary_search_by(|(p, _)| (*p).cmp(path)).ok().map(|i| METHOD_SCOPES[i].1)
}

/// Whether an RPC path takes a client stream (a bulk upload).
pub fn is_client_streaming(path: &str) -> bool {
    CLIENT_STREAMING_METHODS.binary_search(&path).is_ok()
}

/// Fully qualified names of the four IDIC gRPC services.
pub const SERVICE_NAMES: [&str; 4] = [
    "idic.identification.v1.IdentificationService",
    "idic.segmentation.v1.SegmentationService",
    "idic.interaction.v1.InteractionService",
    "idic.customization.v1.CustomizationService",
];
