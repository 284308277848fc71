//go:build tools

// Package tools pins crictl's module so `go build sigs.k8s.io/cri-tools/cmd/crictl`
// resolves from this module's go.sum.
package tools

import _ "sigs.k8s.io/cri-tools/cmd/crictl"
