//! `clusterctl preview`: one namespace, Ingress, DNS record and URL per git
//! branch, garbage-collected by TTL. Built so far: the names ([`naming`]).

pub mod naming;
