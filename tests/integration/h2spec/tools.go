//go:build tools

// Keeps h2spec's command in this module's requirements.
package tools

import _ "github.com/summerwind/h2spec/cmd/h2spec"
