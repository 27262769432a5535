// Package listen binds a loopback TCP port again after a restart, for the
// fault-injecting Listener of package resiliencetest.
//
// # Model
//
// A port may be released only a little after the previous socket closed,
// so Again retries a busy port (EADDRINUSE) every 10 ms for up to 5 s; any
// other error is returned at once.
//
// # Concurrency
//
// Again is safe for concurrent use; it keeps no state.
package listen
