//go:build tools

// Package tools keeps code.gitea.io/gitea (its main package is built by
// tests/forge/install.sh) and all it imports in go.mod and go.sum.
package tools

import _ "code.gitea.io/gitea/cmd"
