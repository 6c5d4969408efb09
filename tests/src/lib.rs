//! `portico-e2e`: end-to-end tests over real HTTP for the whole platform. One crate, one
//! test binary (every module below is `#[cfg(test)]`): each extra test file would be
//! another link on a 2-core machine.

#[cfg(test)]
mod compose_file;
#[cfg(test)]
mod corpus;
#[cfg(test)]
mod generated;
#[cfg(test)]
mod k8s_manifests;
#[cfg(test)]
mod logs;
#[cfg(test)]
mod platform;
#[cfg(test)]
mod playground;
#[cfg(test)]
mod subscriptions;
