//! The data layer: one file per table family with its row types, its `NewX` forms and the
//! queries the rest of the server calls. Resolvers and loaders never build SQL themselves.

pub mod agency;
pub mod catalogue;
pub mod datapoint;
pub mod enums;
pub mod ids;
pub mod metric_setting;
pub mod page;
pub mod report;
pub mod session;
pub mod spreadsheet;
pub mod user;
