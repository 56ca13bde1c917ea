//! The last mile of a release: the release policy, `release-readiness` and the guarded
//! `publish`. Nothing here builds artifacts; it checks the ones in dist/ and ships them as they are.

pub mod npm;
pub mod policy;
pub mod publish;
pub mod readiness;
