// Package modtest builds throwaway modules for the examples' tests: a
// module beside the repository that requires what the examples module
// requires, with the library replaced by the repository, as a user's own
// module would after `go get`.
//
// Its functions fail the test (or skip it, when there is no go command)
// rather than return errors. They are safe for concurrent use by parallel
// tests writing to different directories.
package modtest
