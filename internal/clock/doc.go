// Package clock abstracts the passage of time so that code which waits
// (retry backoff, hedging delays, per-attempt timers, reconnect probes) can
// be tested without sleeping. Production code uses Real; tests use a Fake
// and fire its timers explicitly with Advance.
//
// Real and Fake are safe for concurrent use.
package clock
