//! Package installs behind `install_package`, in three parts: the requirement policy
//! (`policy`: what a requirement string may be, and the allow/deny lists), the pip runner
//! (`pip`: a confined child that downloads under a cap, then installs offline), and the
//! operator's settings (`settings`: the lists, the index and the download limits, checked).
//!
//! The policy runs first and alone decides what reaches pip; the runner never sees a string
//! that did not pass it. The paths below are the ones the rest of the crate uses.

pub(crate) mod pip;
pub(crate) mod policy;
mod settings;

pub(crate) use pip::{InstallError, Installed, Installer};
pub(crate) use policy::{PolicyError, check_lists, parse_requirement};
pub use settings::{PackageOptions, PackageSettings, SettingsError};
