//! Writing reports: creating them, saving values ([`save`]), publishing, unpublishing and
//! deleting them ([`lifecycle`]). Every write is one transaction, is recorded in the
//! report's history and announces itself to live subscribers ([`crate::events`]).

pub mod lifecycle;
pub mod published;
pub mod save;
pub mod validation;
