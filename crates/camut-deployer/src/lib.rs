//! Camut's deployers: what makes and frees the instances drones run on.
//!
//! Every deployer here implements the generated gRPC trait
//! [`camut::v1::deployer_server::Deployer`] (re-exported as [`Deployer`]), so a server
//! holds built-in and external deployers alike, for instance as `Arc<dyn Deployer>`:
//!
//! - [`DummyDeployer`] pretends: instances are entries in a table, nothing runs. It backs
//!   tests of the server's flows, and its optional capacity exercises the
//!   fewer-than-asked rules.
//! - [`LocalDeployer`] runs each drone as a child process of this one, on this machine.
//! - [`RemoteDeployer`] forwards every call to a deployer serving at another address.
//! - [`WithCa`] wraps any of them so that the drones it configures trust the server's
//!   CA certificate.
//!
//! [`service::serve`] serves any deployer as a gRPC service of its own (with gRPC server
//! reflection), which is what `camut deployer local|dummy --listen ADDR` runs.
//!
//! The create rules are those of the API: a create asks for between `min` and `max`
//! instances; fewer than `max` is normal, fewer than `min` fails with
//! `RESOURCE_EXHAUSTED` and creates nothing. Instance ids are
//! `<deployer>-<campaign>-<n>`, numbered from 0 within a campaign, and a destroy frees all
//! of a campaign's instances at once.

#![warn(missing_docs)]

pub mod dummy;
mod error;
pub mod local;
mod registry;
pub mod remote;
pub mod service;
mod with_ca;

pub use camut::v1::deployer_server::Deployer;
pub use dummy::DummyDeployer;
pub use error::Error;
pub use local::LocalDeployer;
pub use remote::RemoteDeployer;
pub use with_ca::WithCa;
