//go:build tools

// Package tools pins the upstream main packages built from this module's go.sum:
// crictl, and etcd's own snapshot tools (etcdctl saves the clean state through
// etcd's snapshot API, etcdutl restores it on `k8sctl reset`).
package tools

import (
	_ "go.etcd.io/etcd/etcdctl/v3"
	_ "go.etcd.io/etcd/etcdutl/v3"
	_ "sigs.k8s.io/cri-tools/cmd/crictl"
)
