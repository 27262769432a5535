// Package testingv1 holds the Go code generated from echo.proto: the
// EchoService the project tests and demonstrates against, with unary,
// server-streaming, client-streaming and bidi methods. Regenerate it with
// scripts/generate.sh; do not edit the .pb.go files.
package testingv1
