//! The simulated data plane and the test harness of the Pinot control plane.
//!
//! There is no kubelet and no container runtime on the machines this project is built on, so
//! [`data_plane`] stands in for them against a real kube-apiserver: fake Nodes in three zones
//! that keep heartbeating, a simulated kubelet that marks scheduled pods Running and Ready and
//! finalizes deleted pods, and a volume provisioner that creates PersistentVolumes in the zone
//! the scheduler chose. [`harness`] gives each integration test a client, its own namespace
//! and an operator scoped to it.

pub mod data_plane;
pub mod drill;
pub mod harness;
pub mod pinot_sim;
pub mod pod_security;
pub mod progress;
pub mod registry;
pub mod workload;
